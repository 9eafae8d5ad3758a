"""docs/deploy.md's monthly costs: the script's output, and each figure traceable."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.costs import LARGE, PRICES, SMALL, monthly, table

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
