"""`benchmarks.big_shop`: the big-shop table's scaling.

A benchmark that measures the wrong thing fails here, not in a table nobody re-derives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

DAY_MS = 86_400_000
START_MS = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp() * 1000)


def test_the_big_shop_table_scales_time_and_memory_and_leaves_bounded_memory_alone() -> None:
    from benchmarks.big_shop import START, STOP, Component

    train = Component("train", "Batch", 60.0, 1024.0, 50, "120 GB", "yes")
    assert "| 60.0 s, 1,024 MB | 50.0 min, 50.0 GB |" in train.row()
    etl = Component("etl", "Glue", 6.0, 1024.0, 10, "16 GB", "yes", memory_scales=False)
    assert "| 1.0 min, 1.0 GB (bounded) |" in etl.row()
    doc = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()
    section = doc.split(START, 1)[1].split(STOP, 1)[0]
    for name in ("ETL", "Training", "Personalize export", "API model load", "Publish"):
        assert f"| {name}" in section, f"docs/deploy.md lacks the big shop's {name} row"
