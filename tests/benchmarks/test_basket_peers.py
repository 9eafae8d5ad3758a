"""`benchmarks.basket_peers`: TIFU-KNN and UP-CF scores by hand.

A benchmark that measures the wrong thing fails here, not in a table nobody re-derives."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from training.data import Interactions

DAY_MS = 86_400_000
START_MS = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp() * 1000)


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
