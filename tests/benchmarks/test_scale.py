"""`benchmarks.scale`: the scale rows are what a hand calculation gives.

A benchmark that measures the wrong thing fails here, not in a table nobody re-derives."""

from __future__ import annotations

from datetime import UTC, datetime

from benchmarks.child import Measured
from benchmarks.scale import scale_report, scale_rows

DAY_MS = 86_400_000
START_MS = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp() * 1000)


def test_the_scale_rows_are_the_medians_of_interleaved_runs() -> None:
    measured = {
        "ours": [Measured(10.0, 900.0), Measured(30.0, 1100.0), Measured(20.0, 1000.0)],
        "peer": [Measured(5.0, 400.0), Measured(40.0, 600.0), Measured(10.0, 500.0)],
    }
    shape = {"events": 1_000, "users": 20, "items": 10}
    rows, notes = scale_report(shape, measured, ["v1", "v2", "v3"])
    assert [(r.ours, r.theirs) for r in rows] == [(20.0, 10.0), (1000.0, 500.0)]
    assert (
        rows[0].what
        == "`recs train` at scale, median of 3: wall time, 1,000 interactions, 10 items"
    )
    assert "ours: 10.0, 30.0, 20.0 s; implicit: 5.0, 40.0, 10.0 s" in notes[0]
    assert "at most 2x its time (2.00x: met) and 2x its memory (2.00x: met)" in notes[1]


def test_the_scale_benchmark_times_recs_train_on_a_curated_lake() -> None:
    """Before, it called train_on on events held in memory, skipping the user's path."""
    rows, notes = scale_rows(4_000, runs=1)
    assert rows[0].what.endswith("4,000 interactions, 50 items")  # all curated by the ETL
    assert rows[0].ours > 0
    assert rows[1].ours > 0
    assert "Ours wrote 1 model versions with their batch files" in notes[1]
