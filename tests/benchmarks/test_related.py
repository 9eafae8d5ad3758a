"""`benchmarks.related`: the related-items queries, scores and peers by hand.

A benchmark that measures the wrong thing fails here, not in a table nobody re-derives."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from tests.benchmarks.test_basket_peers import _basket_log

DAY_MS = 86_400_000
START_MS = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp() * 1000)


def test_related_queries_are_the_next_different_item_the_same_day() -> None:
    from benchmarks.related import queries

    log = _basket_log([("U1", "A", 0), ("U1", "B", 0), ("U1", "C", 0), ("U2", "A", 0)])
    day = START_MS + 40 * DAY_MS
    after = pa.table(
        {
            "user_id": ["U1", "U1", "U1", "U1", "U2", "U9"],
            "item_id": ["A", "A", "B", "C", "B", "C"],
            "ts_ms": [day, day + 1, day + 2, day + DAY_MS, day, day + 1],
        }
    )
    asked, sought = queries(log, after)
    code = {x: log.item_ids.tolist().index(x) for x in ("A", "B", "C")}
    # U1: A, A again (skipped), then B the same day; C is the next day. U2 has one event;
    # U9 is unknown before the cut.
    assert list(zip(asked.tolist(), sought.tolist(), strict=True)) == [(code["A"], code["B"])]


def test_related_scores_and_peers_by_hand() -> None:
    from benchmarks.related import category_best_sellers, co_occurrence, scored

    asked, sought = np.array([0, 0, 1]), np.array([2, 3, 0])
    lists = {0: [0, 2, 5], 1: [4]}  # the asked item itself never counts
    assert scored(lists, asked, sought).tolist() == pytest.approx([1.0, 0.0, 0.0])
    # A and B are bought together by two shoppers, A and C by one; D sells most on its own.
    log = _basket_log(
        [("U1", "A", 0), ("U1", "B", 0), ("U2", "A", 0), ("U2", "B", 0), ("U3", "A", 0)]
        + [("U3", "C", 0)]
        + [(f"V{n}", "D", 0) for n in range(5)]
    )
    code = {x: log.item_ids.tolist().index(x) for x in ("A", "B", "C", "D")}
    found = co_occurrence(log, np.array([code["A"]]))[code["A"]]
    assert found[:2] == [code["B"], code["C"]]
    best = category_best_sellers(log, np.array([code["A"]]), {"A": "x", "C": "x", "D": "y"})
    assert best[code["A"]][:2] == [code["A"], code["C"]]
