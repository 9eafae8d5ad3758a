"""The benchmarks' own code: each figure is what a hand calculation gives on a tiny input.

A benchmark that measures the wrong thing fails here, not in a table nobody re-derives:
before, the scale rows' memory was the generator's peak (read in the same process after
generating the shop), and implicit's peers left out items a shopper had bought even where
shoppers buy them again.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from benchmarks.child import Measured, measure
from benchmarks.quality import peers, per_user_ndcg
from benchmarks.scale import scale_report, scale_rows
from training.data import Interactions

DAY_MS = 86_400_000
START_MS = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp() * 1000)


def test_measure_gives_the_commands_own_peak_not_what_its_parent_holds() -> None:
    held = b"\x01" * (300 << 20)  # the parent's data, as the generated shop was
    child = "import time; b = b'\\x01' * (100 << 20); time.sleep(0.3)"
    found = measure([sys.executable, "-c", child])
    assert 100 <= found.rss_mb < 250
    assert found.seconds >= 0.3
    assert len(held) == 300 << 20  # still held while the child ran


def test_measure_names_a_command_that_failed() -> None:
    with pytest.raises(RuntimeError, match="failed \\(3\\): boom"):
        measure([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])


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


def _log(days: int, users: int, item_of: Callable[[int, int], int]) -> Interactions:
    """`users` shoppers, one purchase a day each, of item `item_of(user, day)`."""
    rows = [(u, d) for d in range(days) for u in range(users)]
    return Interactions.from_arrow(
        pa.table(
            {
                "user_id": [f"U{u}" for u, _ in rows],
                "item_id": [f"I{item_of(u, d)}" for u, d in rows],
                "event_type": ["purchase"] * len(rows),
                "ts_ms": [START_MS + d * DAY_MS + u * 1000 for u, d in rows],
            }
        )
    )


def test_popularity_and_repeat_peers_by_hand() -> None:
    log = _log(10, 3, lambda u, d: [1, 2, 3][u] if d < 9 else 1)  # item 1 sells most lately
    users = np.arange(3)
    cut = START_MS + 10 * DAY_MS
    ranked, detail = peers(log, users, cut, learned=False)
    code = {item: n for n, item in enumerate(log.item_ids.tolist())}
    # Popularity over the last 30 days: I1 (12 sales), then I2 and I3 (9 each).
    assert ranked["popularity, last 30 days"][0][:3].tolist() == [
        code[i] for i in ("I1", "I2", "I3")
    ]
    # Each shopper's own most-bought first, then popular.
    assert ranked["repeat then popularity"][1][:2].tolist() == [code["I2"], code["I1"]]
    assert detail["repeat then popularity"] == "seen items first"
    assert "too little data to choose on" in detail["implicit ALS"]


@pytest.mark.parametrize(
    ("item_of", "expected"),
    [
        (lambda u, d: 100 + u % 40, "seen items allowed"),  # every shopper rebuys one item
        (lambda u, d: (u * 13 + d * 7) % 300, "seen items left out"),  # nobody buys twice
    ],
    ids=["repeats", "no repeats"],
)
def test_each_implicit_peer_gets_the_repeat_policy_its_validation_prefers(
    item_of: Callable[[int, int], int], expected: str
) -> None:
    """Before: implicit's default left out bought items on a shop of rebuyers (0.106 where
    the same model scores 0.368 with them allowed)."""
    log = _log(30, 120, item_of)
    users = np.arange(log.n_users)
    _, detail = peers(log, users, START_MS + 30 * DAY_MS, learned=False)
    for name in ("implicit ALS", "implicit BPR", "EASE, tuned", "TIFU-KNN", "UP-CF@r"):
        assert expected in detail[name].split(":")[0], detail[name]


def test_per_user_ndcg_by_hand() -> None:
    truth = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32))
    best = np.array([[2, 3, 0], [0, 1, 2], [0, 3, 2]])
    found = per_user_ndcg(best, truth, k=3)
    ideal = 1 + 1 / np.log2(3)
    # User 0 hits at ranks 1 and 3; user 1 has no truth and is left out; user 2 misses.
    assert found.tolist() == pytest.approx([(1 + 1 / np.log2(4)) / ideal, 0.0])


def _basket_log(rows: list[tuple[str, str, int]]) -> Interactions:
    """(user, item, day) purchases: one basket per user and day."""
    return Interactions.from_arrow(
        pa.table(
            {
                "user_id": [u for u, _, _ in rows],
                "item_id": [i for _, i, _ in rows],
                "event_type": ["purchase"] * len(rows),
                "ts_ms": [START_MS + d * DAY_MS for _, _, d in rows],
            }
        )
    )


def test_tifu_vectors_by_hand() -> None:
    """Baskets in blocks, decayed within a block and across blocks (Hu et al. 2020)."""
    from benchmarks.basket_peers import baskets, tifu_vectors

    log = _basket_log([("U1", "A", 0), ("U1", "B", 0), ("U1", "A", 1), ("U1", "A", 2)])
    _, basket, _, counts = baskets(log, np.ones(len(log), dtype=bool))
    assert basket.tolist() == [0, 0, 1, 2]
    assert counts.tolist() == [3]
    a, b = (log.item_ids.tolist().index(x) for x in ("A", "B"))
    within, group = 0.5, 0.25
    # Seven groups, three baskets: one basket a block, blocks weigh group^2, group, 1, over 3.
    seven = tifu_vectors(log, np.ones(len(log), bool), groups=7, within=within, group=group)
    assert seven[0, a] == pytest.approx((group**2 + group + 1) / 3)
    assert seven[0, b] == pytest.approx(group**2 / 3)
    # Two groups: basket 0 alone, then baskets 1 and 2 (the later block takes the extra),
    # within it weighing within^1 and within^0, over its size 2.
    two = tifu_vectors(log, np.ones(len(log), bool), groups=2, within=within, group=group)
    assert two[0, a] == pytest.approx((group * 1 + (within + 1) / 2) / 2)
    assert two[0, b] == pytest.approx(group / 2)


def test_tifu_scores_mix_the_user_with_the_nearest_users() -> None:
    from benchmarks.basket_peers import tifu_scores

    vectors = sp.csr_matrix(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], dtype=np.float32))
    rows = np.array([0])
    # The nearest one is the user: the score is the user's own vector.
    ((_, alone),) = list(tifu_scores(vectors, rows, neighbours=1, alpha=0.7))
    assert alone[0].tolist() == pytest.approx([1.0, 0.0])
    # The nearest two are the user and user 1 (user 2 is far).
    ((_, mixed),) = list(tifu_scores(vectors, rows, neighbours=2, alpha=0.7))
    assert mixed[0].tolist() == pytest.approx([0.7 * 1 + 0.3 * 0.95, 0.3 * 0.05])


def test_upcf_scores_by_hand() -> None:
    """Recency-aware popularity over the last r baskets, spread by asymmetric cosine
    similarity raised to the locality (Faggioli et al. 2020)."""
    from benchmarks.basket_peers import upcf_scores

    log = _basket_log(
        [("U1", "A", 0), ("U1", "B", 1), ("U2", "A", 0), ("U2", "C", 1), ("U2", "C", 2)]
    )
    code = {x: log.item_ids.tolist().index(x) for x in ("A", "B", "C")}
    everything = np.ones(len(log), dtype=bool)
    ((_, found),) = list(
        upcf_scores(log, everything, np.array([0]), recent=1, asymmetry=0.5, locality=2.0)
    )
    # U1's last basket holds B; U2's last holds C. U1 and U2 share A: sim = 1 / sqrt(2 * 2).
    similarity = (1 / np.sqrt(2 * 2)) ** 2
    assert found[0, code["B"]] == pytest.approx(1.0)
    assert found[0, code["C"]] == pytest.approx(similarity)
    assert found[0, code["A"]] == pytest.approx(0.0)
    ((_, wider),) = list(
        upcf_scores(log, everything, np.array([0]), recent=2, asymmetry=0.5, locality=1.0)
    )
    # Over the last 2 baskets, U1 holds A and B (a half each); U2's last two both hold C.
    assert wider[0, code["A"]] == pytest.approx(0.5)
    assert wider[0, code["B"]] == pytest.approx(0.5)
    assert wider[0, code["C"]] == pytest.approx(0.5 * 1.0)


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


def test_room_for_new_items_takes_the_last_places_of_the_first_ten() -> None:
    from benchmarks.quality import with_room

    answers = np.array([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
    fresh = np.array([[3, 20, 21, 22, -1, -1, -1, -1, -1, -1, -1, -1]])
    # 3 is in the list's first 7 already, so the fresh ones are 20 and 21; 8, 9 and 10 follow.
    assert with_room(answers, fresh, 2, k=9).tolist() == [[1, 2, 3, 4, 5, 6, 7, 20, 21, 8, 9, 10]]
    assert with_room(answers, fresh, 3).tolist() == [[1, 2, 3, 4, 5, 6, 7, 20, 21, 22, 8, 9]]


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
