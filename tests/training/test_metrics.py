"""Metrics on lists with a known answer, and the time-based holdout."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from training.data import Interactions, time_split
from training.errors import NotEnoughData
from training.metrics import METRIC_NAMES, evaluate


def _truth(rows: list[list[int]], n_items: int = 30) -> sp.csr_matrix:
    data = [(r, i) for r, items in enumerate(rows) for i in items]
    r, c = zip(*data, strict=True)
    return sp.csr_matrix((np.ones(len(data)), (r, c)), shape=(len(rows), n_items))


def test_metrics_match_a_hand_computed_answer() -> None:
    recommended = np.array([[0, 2, 1, *range(3, 25)], [5, *range(6, 29), 0]], dtype=np.int64)
    truth = _truth([[0, 1], [29]])
    m = evaluate(recommended, truth)
    assert list(m) == list(METRIC_NAMES)
    # User 0: hits at ranks 1 and 3. User 1: 29 is not in their top 25.
    assert m["precision_at_5"] == pytest.approx((2 / 5 + 0) / 2)
    assert m["recall_at_5"] == pytest.approx((1 + 0) / 2)
    ndcg0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m["normalized_discounted_cumulative_gain_at_5"] == pytest.approx(ndcg0 / 2)
    assert m["mean_reciprocal_rank_at_25"] == pytest.approx((1 + 0) / 2)
    assert m["coverage"] == pytest.approx(29 / 30)  # items 0 to 28


def test_padding_never_counts_as_a_hit() -> None:
    recommended = np.full((1, 25), -1, dtype=np.int64)
    recommended[0, 0] = 3
    m = evaluate(recommended, _truth([[3]]))
    assert m["precision_at_5"] == pytest.approx(1 / 5)
    assert m["coverage"] == pytest.approx(1 / 30)


def _log(rows: list[tuple[str, str, str, int]]) -> Interactions:
    users, items, kinds, ts = zip(*rows, strict=True)
    return Interactions.from_arrow(
        pa.table({"user_id": users, "item_id": items, "event_type": kinds, "ts_ms": ts})
    )


def test_the_holdout_is_each_test_users_newest_events() -> None:
    rows = [
        (f"U{u}", f"I{(u + t) % 7}", "view", 1000 * t + u) for u in range(40) for t in range(10)
    ]
    rows.append(("lonely", "I1", "view", 5))
    log = _log(rows)
    split = time_split(log, test_users=0.25, holdout=0.2, seed=3)
    assert split.n_test == 10
    assert "lonely" not in set(log.user_ids[split.test_users])
    held = ~split.train
    assert held.sum() == 10 * 2  # 20% of 10 events, for each of 10 users
    for user in split.test_users:
        mine = log.user == user
        newest = np.sort(log.ts_ms[mine])[-2:]
        assert sorted(log.ts_ms[mine & held]) == newest.tolist()
    again = time_split(log, test_users=0.25, holdout=0.2, seed=3)
    assert (again.test_users == split.test_users).all()


def test_too_few_users_to_evaluate_is_refused() -> None:
    log = _log([("U1", "I1", "view", 1), ("U1", "I2", "view", 2)])
    with pytest.raises(NotEnoughData, match="only 1 users have 2 or more interactions"):
        time_split(log)
    with pytest.raises(NotEnoughData, match="run `recs etl` first"):
        Interactions.from_arrow(
            pa.table(
                {"user_id": [], "item_id": [], "event_type": [], "ts_ms": []},
                schema=pa.schema(
                    [
                        ("user_id", pa.string()),
                        ("item_id", pa.string()),
                        ("event_type", pa.string()),
                        ("ts_ms", pa.int64()),
                    ]
                ),
            )
        )
