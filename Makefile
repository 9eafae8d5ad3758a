# The project's verbs. `make demo` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
TF_PLUGIN_DIR ?= /opt/tf-plugins
export RECS_LAKE ?= ./lake
export RECS_EVENT_LOG ?= ./var/event-log.sqlite3
export RECS_STORE ?= ./var/online-store.sqlite3

# Demo shop size: small enough for a minute on a laptop, large enough to train on later.
DEMO_ARGS ?= --users 5000 --items 2000 --categories 20 --days 90 --events 500000 --seed 42 --end 2026-11-01 --live-days 1

.PHONY: venv demo test test-all lint format bench generate flush etl export train publish sql tf-validate clean

venv: $(STAMP)

$(STAMP):
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required"; exit 1; }
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "recs needs Python 3.11, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# The demo's query: purchases and buyers per category over the demo shop.
DEMO_QUERY := SELECT it.category, count(*) AS purchases, count(DISTINCT i.user_id) AS buyers FROM interactions i JOIN items it ON it.item_id = i.item_id WHERE i.event_type = 'purchase' GROUP BY 1 ORDER BY 2 DESC LIMIT 5

## demo: generate a shop, ingest it, curate it, query it, export it, train, publish
demo: venv
	$(BIN)/recs generate $(DEMO_ARGS)
	echo '{"userId":"U1","itemId":"I100","event_type":"view"}' | $(BIN)/recs ingest -
	$(BIN)/recs etl
	$(BIN)/recs sql -c "$(DEMO_QUERY)"
	$(BIN)/recs export personalize --run demo
	$(BIN)/recs train
	$(BIN)/recs publish
	@echo
	@echo "The lake at $(RECS_LAKE): $$(find $(RECS_LAKE)/raw/events -type f | wc -l) raw event objects, $$(find $(RECS_LAKE)/curated -name '*.parquet' | wc -l) curated Parquet files"
	@echo "Query it yourself: .venv/bin/recs sql   (docs/analysts.md has worked queries)"

## test: the fast suite (unit, integration under moto, e2e); what CI runs
test: venv
	$(BIN)/pytest -m "not slow" -q

## test-all: everything, including the slow suites
test-all: venv
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: throughput benchmarks; writes docs/benchmarks.md
bench: venv
	$(BIN)/python -m benchmarks --out docs/benchmarks.md

generate: venv
	$(BIN)/recs generate $(DEMO_ARGS)

flush: venv
	$(BIN)/recs flush

## etl: curate what is new in the raw zone (make generate first for a shop)
etl: venv
	$(BIN)/recs etl

## export: Amazon Personalize import files from the curated zone
export: venv
	$(BIN)/recs export personalize

## train: train and evaluate the recipes, write models/ and batch/, publish if the gate agrees
train: venv
	$(BIN)/recs train
	$(BIN)/recs publish

## publish: load the newest approved model version into the online store
publish: venv
	$(BIN)/recs publish

## sql: DuckDB over the curated lake
sql: venv
	$(BIN)/recs sql

## tf-validate: check the Terraform offline, against the provider mirror on this machine
tf-validate:
	cd infra/terraform && terraform fmt -check -recursive && terraform init -backend=false -input=false -plugin-dir=$(TF_PLUGIN_DIR) >/dev/null && terraform validate

clean:
	rm -rf lake var .bench
