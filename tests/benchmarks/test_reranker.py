"""`benchmarks.reranker`: the reranker's features, labels and ranking by hand.

A benchmark that measures the wrong thing fails here, not in a table nobody re-derives."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from training.data import Interactions

DAY_MS = 86_400_000
START_MS = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp() * 1000)


def _events(rows: list[tuple[str, str, float]]) -> Interactions:
    """Purchases as (user, item, day after START_MS)."""
    return Interactions.from_arrow(
        pa.table(
            {
                "user_id": [u for u, _, _ in rows],
                "item_id": [i for _, i, _ in rows],
                "event_type": ["purchase"] * len(rows),
                "ts_ms": [START_MS + int(d * DAY_MS) for _, _, d in rows],
            }
        )
    )


def test_reranker_features_by_hand() -> None:
    from benchmarks.reranker import FEATURES, features

    log = _events(
        [
            ("U0", "I1", 0),
            ("U0", "I1", 2),
            ("U0", "I1", 4),
            ("U0", "I2", 4),
            ("U1", "I2", 1),
            ("U1", "I3", 7),  # after the moment of ranking: must count nowhere
        ]
    )
    code = {item: n for n, item in enumerate(log.item_ids.tolist())}
    found, table = features(log, START_MS + 6 * DAY_MS, np.array([0], dtype=np.int64))
    # U0's own items and the popular ones (I3 was not bought yet: nobody's candidate).
    assert sorted(found.item.tolist()) == [code["I1"], code["I2"]]
    row = dict(zip(FEATURES, table[found.item.tolist().index(code["I1"])].tolist(), strict=True))
    assert row["count"] == 3
    assert row["count share"] == 0.75
    assert row["baseline rank"] == 0  # bought most, so the baseline's first
    assert (row["days since last touch"], row["days since first touch"]) == (2, 6)
    assert row["mean days between touches"] == 2
    assert row["days since last over mean gap"] == 1
    assert row["popularity 7 days"] == 3  # I1's three sales in the last week
    assert row["item's users"] == 1
    assert row["item's repeat rate"] == 1
    assert (row["user's baskets"], row["user's events"], row["user's items"]) == (3, 4, 2)
    assert (row["days since user's last event"], row["days since user's first event"]) == (2, 6)
    other = dict(zip(FEATURES, table[found.item.tolist().index(code["I2"])].tolist(), strict=True))
    assert other["item's users"] == 2
    assert other["item's repeat rate"] == 0
    assert other["mean days between touches"] == 9999  # touched once: no gap to measure


def test_reranker_labels_what_each_user_touched_inside_the_window() -> None:
    from benchmarks.reranker import training_set

    # 10 days; U0 buys I1 daily, U1 buys I2 daily and I3 on day 9 alone.
    rows = [("U0", "I1", d) for d in range(10)] + [("U1", "I2", d) for d in range(10)]
    log = _events([*rows, ("U1", "I3", 9.5)])
    table, labels, groups = training_set(log, START_MS + 10 * DAY_MS, START_MS)
    # Windows of 2 days (a fifth of the period), 5 of them a day apart, two users each.
    assert groups.tolist() == [2] * 10
    assert len(labels) == len(table) == groups.sum()
    # Each user's own item is touched in every window; the other users' items are not,
    # except I3 for U1 in the newest window (I3 is nobody's candidate before it sold).
    assert labels.sum() == 10


def test_reranker_ranks_by_the_models_scores_within_each_user() -> None:
    from benchmarks.reranker import FEATURES, rank

    class ByCount:
        """LightGBM's `Booster.predict` contract: one score per row, first n trees."""

        def predict(self, table: np.ndarray, num_iteration: int | None = None) -> np.ndarray:
            return (
                table[:, FEATURES.index("count")]
                - 0.1 * table[:, FEATURES.index("popularity 365 days")]
            )

    log = _events([("U0", "I1", 0), ("U0", "I2", 1), ("U0", "I2", 2), ("U1", "I1", 1)])
    code = {item: n for n, item in enumerate(log.item_ids.tolist())}
    best = rank(ByCount(), log, START_MS + 3 * DAY_MS, np.array([0, 1]), 3)
    assert best[0].tolist() == [code["I2"], code["I1"], -1]
    # U1: I1 (bought once) over I2 (never), though I2 sold more.
    assert best[1].tolist() == [code["I1"], code["I2"], -1]
