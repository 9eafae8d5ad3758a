"""docs/deploy.md's monthly costs: the script's output, and each figure traceable."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from infra.costs import LARGE, LARGE_PERSONALIZE, PRICES, SMALL, monthly, table, terraform_default

ROOT = Path(__file__).resolve().parents[2]


def test_the_deploy_doc_shows_what_the_script_computes() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    shown = doc.split("<!-- costs:start -->\n", 1)[1].split("<!-- costs:end -->", 1)[0]
    assert shown == table(), "docs/deploy.md is stale: paste `python -m infra.costs` into it"


def test_a_figure_is_price_times_quantity() -> None:
    # Glue: 2 DPU for 20 minutes, 30 nights, at the DPU-hour price.
    assert monthly(LARGE)["Glue (etl)"] == pytest.approx(2 * 20 / 60 * 30 * PRICES["glue_dpu_hour"])
    # One provisioned shard all month, and a PUT unit per event.
    events = SMALL.events_per_day * 30
    shard = 730 * PRICES["kinesis_shard_hour"]
    assert monthly(SMALL)["Kinesis"] == pytest.approx(
        shard + events / 1e6 * PRICES["kinesis_put_units_per_million"]
    )
    # The small shop runs no Glue or Batch; every figure is a cost, never a credit.
    assert "Glue (etl)" not in monthly(SMALL)
    for shop in (SMALL, LARGE):
        assert all(value >= 0 for value in monthly(shop).values())
    assert sum(monthly(SMALL).values()) < sum(monthly(LARGE).values())


def test_batch_glue_and_log_retention_are_what_terraform_deploys() -> None:
    assert LARGE.batch_vcpu == terraform_default("batch_vcpu") == 4
    assert LARGE.batch_memory_gb * 1024 == terraform_default("batch_memory_mb")
    assert LARGE.glue_dpus == terraform_default("glue_workers")
    assert LARGE.log_retention_days == terraform_default("log_retention_days") == 365


def test_a_personalize_campaign_bills_its_floor_all_month_even_unused() -> None:
    idle = replace(LARGE_PERSONALIZE, recommendation_requests_per_month=0)
    assert monthly(idle)["Personalize: campaign"] == pytest.approx(
        730 * PRICES["personalize_tps_hour"]
    )
    busy = monthly(LARGE_PERSONALIZE)["Personalize: campaign"]
    assert busy > monthly(idle)["Personalize: campaign"]  # above the floor, the TPS used
    assert "Personalize: campaign" not in monthly(LARGE)


def test_batch_pays_for_its_nat_and_logs_for_a_year_of_storage() -> None:
    assert "NAT gateway (Batch)" not in monthly(SMALL)  # no Batch, no NAT
    assert monthly(LARGE)["NAT gateway (Batch)"] >= 730 * PRICES["nat_hour"]
    shorter = replace(LARGE, log_retention_days=30)
    assert monthly(shorter)["CloudWatch Logs storage"] == pytest.approx(
        monthly(LARGE)["CloudWatch Logs storage"] * 30 / 365
    )
