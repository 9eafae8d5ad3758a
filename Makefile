# The project's verbs. `make demo` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
# checkov pins boto3 to an older release than ours, so it lives in a venv of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cat infra/checkov-constraints.txt | sha1sum | cut -c1-12)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
TF_PLUGIN_DIR ?= /opt/tf-plugins
export RECS_LAKE ?= ./lake
export RECS_EVENT_LOG ?= ./var/event-log.sqlite3
export RECS_STORE ?= ./var/online-store.sqlite3
export RECS_IDEMPOTENCY_STORE ?= ./var/idempotency.sqlite3
PORT ?= 8000
BASE := http://127.0.0.1:$(PORT)

# Demo shop size: small enough for a minute on a laptop, large enough to train on later.
DEMO_ARGS ?= --users 5000 --items 2000 --categories 20 --days 90 --events 500000 --seed 42 --end 2026-11-01 --live-days 1

.PHONY: aws-local browser checkov screenshots image image-context glue-artifacts venv demo test test-all lint format bench generate flush etl export train pipeline publish sql serve stop openapi package tf-validate clean

venv: $(STAMP)

$(STAMP):
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required"; exit 1; }
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12)), "recs needs Python 3.11 (or 3.12, what its Lambdas run), found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# The demo's query: purchases and buyers per category over the demo shop.
DEMO_QUERY := SELECT it.category, count(*) AS purchases, count(DISTINCT i.user_id) AS buyers FROM interactions i JOIN items it ON it.item_id = i.item_id WHERE i.event_type = 'purchase' GROUP BY 1 ORDER BY 2 DESC LIMIT 5

# The README's curl lines, which the demo prints and runs against the API it starts.
DEMO_CURLS := \
	"curl -s '$(BASE)/v1/recommendations/personalized?userId=U1&k=3'" \
	"curl -s '$(BASE)/v1/recommendations/related?itemId=I100&k=3'" \
	"curl -s -X POST '$(BASE)/v1/events' -H 'content-type: application/json' -H 'Idempotency-Key: demo-1' -d '{\"userId\":\"U1\",\"itemId\":\"I100\",\"event_type\":\"view\"}'" \
	"curl -s '$(BASE)/v1/recommendations/personalized?userId=U1&k=3'" \
	"curl -s '$(BASE)/v1/health'"

## demo: generate a shop, ingest, curate, query, export, train, publish, then serve the API
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
	@$(MAKE) --no-print-directory serve-background
	@echo
	@echo "The API is up at $(BASE) (docs: $(BASE)/v1/docs; log: var/serve.log; stop it: make stop)."
	@echo "The demo store is at $(BASE)/ and the ops page at $(BASE)/ops. Try:"
	@echo
	@for line in $(DEMO_CURLS); do echo "  $$line"; done
	@echo
	@for line in $(DEMO_CURLS); do echo "\$$ $$line"; eval "$$line"; echo; done

## test: the fast suite (unit, integration under moto, e2e); what CI runs. One worker per CPU
## (pytest-xdist), each taking whole files, so a module's fixtures are built once.
test: venv $(CHECKOV_STAMP)
	$(BIN)/pytest -m "not slow and not browser" -q -n auto --dist loadfile

## test-all: everything, including the slow suites and the browser test
test-all: venv $(CHECKOV_STAMP) browser
	$(BIN)/pytest -q

## browser: Debian's Chromium for the browser test and the screenshots (apt, as root)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		[ "$$(id -u)" = 0 ] || { echo "make browser installs Debian's chromium with apt: run it as root, or install chromium yourself (RECS_CHROMIUM names another)"; exit 1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@chromium --version

## screenshots: the store, a product and the ops page into docs/img (after make demo)
screenshots: venv browser
	@$(BIN)/python -c 'import urllib.request as u; u.urlopen("$(BASE)/v1/health", timeout=2)' 2>/dev/null \
		|| { echo "The API is not up at $(BASE): run make demo first"; exit 1; }
	$(BIN)/recs pipeline run
	$(BIN)/python -m orchestration.ui.tour --base $(BASE) --out docs/img

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

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
	$(BIN)/recs publish --if-approved

## pipeline: one night's run: flush, etl, train, evaluate, gate, publish, notify (recs pipeline status)
pipeline: venv
	$(BIN)/recs pipeline run

## publish: load the newest approved model version into the online store
publish: venv
	$(BIN)/recs publish

## serve: the recommendations API on $(BASE), in the foreground (Ctrl-C stops it)
serve: venv
	$(BIN)/recs serve --port $(PORT)

# The API in the background for the demo: var/serve.pid, var/serve.log (rotated); waits until healthy.
# Every log line goes to var/serve.log; var/serve.out keeps what bypasses logging (the start
# line), and the previous start's is kept as var/serve.out.1. All of var/ is the owner's alone.
serve-background: venv stop
	@umask 077; mkdir -p var; [ ! -f var/serve.out ] || mv -f var/serve.out var/serve.out.1; \
		nohup $(BIN)/recs serve --port $(PORT) --log-level WARNING --log-file var/serve.log > var/serve.out 2>&1 & echo $$! > var/serve.pid
	@$(BIN)/python -c 'import time, urllib.request as u; exec("for _ in range(150):\n try: u.urlopen(\"$(BASE)/v1/health\", timeout=1); break\n except Exception: time.sleep(0.2)\nelse: raise SystemExit(1)")' \
		|| { echo "The API did not become healthy; see var/serve.out and var/serve.log"; cat var/serve.out var/serve.log; exit 1; }

## stop: stop the API the demo started
stop:
	@if [ -f var/serve.pid ]; then kill $$(cat var/serve.pid) 2>/dev/null || true; rm -f var/serve.pid; sleep 0.5; fi

## openapi: regenerate serving/openapi.yaml from the app (a test fails when it is stale)
openapi: venv
	$(BIN)/recs openapi --out serving/openapi.yaml

## package: the API's Lambda zip for ARM64 in dist/ (fetches aarch64 wheels from PyPI)
package: venv
	$(BIN)/python -m serving.package --out dist/recs-api-arm64.zip

## image-context: the pipeline image's build context in dist/pipeline-image (aarch64 wheels)
image-context: venv
	$(BIN)/python -m orchestration.package image --out dist/pipeline-image

## image: build the pipeline's arm64 image (needs a Docker engine); IMAGE names it
IMAGE ?= recs-pipeline:$(shell git rev-parse --short HEAD)
image: image-context
	@docker info >/dev/null 2>&1 || { echo "make image needs a running Docker engine; the build context is ready in dist/pipeline-image"; exit 1; }
	docker buildx build --platform linux/arm64 --provenance=false -t $(IMAGE) dist/pipeline-image

## glue-artifacts: our wheel and the Glue job's pinned modules in dist/glue
glue-artifacts: venv
	$(BIN)/python -m orchestration.package glue --out dist/glue

## sql: DuckDB over the curated lake
sql: venv
	$(BIN)/recs sql

## tf-validate: check the Terraform offline, against the provider mirror on this machine
tf-validate:
	cd infra/terraform && terraform fmt -check -recursive && terraform init -backend=false -input=false -plugin-dir=$(TF_PLUGIN_DIR) >/dev/null && terraform validate

## aws-local: apply the Terraform to a moto server on loopback and run the AWS path on it
aws-local: venv package
	$(BIN)/python -m infra.aws_local

## checkov: scan infra/terraform with checkov (zero failures; every skip carries its reason)
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov -d infra/terraform --framework terraform --compact --quiet

$(CHECKOV_STAMP): infra/checkov-constraints.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required"; exit 1; }
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c infra/checkov-constraints.txt checkov
	rm -f $(CHECKOV_VENV)/.installed-*
	touch $@

clean: stop
	rm -rf lake var .bench dist
