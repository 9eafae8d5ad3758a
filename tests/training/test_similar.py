"""Related items: neighbours the data supports, ties broken by evidence and popularity (never
by id), and the category's best sellers where co-occurrence is thin."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from training.data import Interactions
from training.recipes import ItemKNN
from training.similar import related_items, shoppers


def _log(pairs: list[tuple[str, str]]) -> Interactions:
    users, items = zip(*pairs, strict=True)
    return Interactions.from_arrow(
        pa.table(
            {
                "user_id": users,
                "item_id": items,
                "event_type": ["view"] * len(pairs),
                "ts_ms": list(range(len(pairs))),
            }
        )
    )


def _code(log: Interactions, item: str) -> int:
    return list(log.item_ids).index(item)


def _related(log: Interactions, categories: dict[str, str], k: int) -> list[list[str]]:
    knn = ItemKNN().fit(log.matrix())
    best, scores = knn.related(np.arange(log.n_items, dtype=np.int64), k)
    popularity = np.bincount(log.item, minlength=log.n_items).astype(np.float32)
    best, scores, _ = related_items(
        log, categories, popularity, best, scores, alpha=0.5, min_events=2
    )
    for row in scores:
        finite = row[np.isfinite(row)]
        assert (np.diff(finite) <= 0).all()  # scores fall down every list
    return [[str(log.item_ids[c]) for c in row if c >= 0] for row in best]


def test_ties_are_broken_by_shared_shoppers_then_popularity_never_by_id() -> None:
    """X's cosine is 0.5 with both I1 and I9: I9 shares 4 shoppers with X, I1 only 2."""
    pairs = [(f"U{u}", "X") for u in range(4)]
    pairs += [(f"U{u}", "I9") for u in range(4)] + [(f"V{u}", "I9") for u in range(12)]
    pairs += [("U0", "I1"), ("U1", "I1"), ("W0", "I1"), ("W1", "I1")]
    log = _log(pairs)
    related = _related(log, {}, 2)
    assert related[_code(log, "X")] == ["I9", "I1"]  # id order would say I1 first


def test_a_neighbour_needs_two_shared_shoppers() -> None:
    """Before: an item seen by one shopper was 1.0 similar to all that shopper touched once,
    listed in id order."""
    pairs = [("U0", item) for item in ("A", "B", "C", "D")]  # one shopper saw A to D once
    pairs += [(f"S{u}", item) for u in range(6) for item in ("B", "C")]  # B, C: best sellers
    pairs += [(f"T{u}", "E") for u in range(3)]  # E sells less, in A's category
    log = _log(pairs)
    categories = {"A": "lamps", "E": "lamps", "B": "rugs", "C": "rugs", "D": "vases"}
    related = _related(log, categories, 2)
    # A and D have one shopper: too thin for neighbours; A gets its category's best seller,
    # then the shop's.
    assert related[_code(log, "A")] == ["E", "B"]
    # B and C share 6 shoppers: each other's first. D shares one with B: no neighbour; B's
    # row is topped up with the shop's best seller instead (its category has no other).
    assert related[_code(log, "B")] == ["C", "E"]


def test_shoppers_counts_distinct_users() -> None:
    log = _log([("U1", "A"), ("U1", "A"), ("U2", "A"), ("U1", "B")])
    assert shoppers(log).tolist() == [2.0, 1.0]


def test_cosine_scores_give_the_shared_shoppers_back() -> None:
    rng = np.random.default_rng(3)
    pairs = sorted({(f"U{rng.integers(40)}", f"I{rng.integers(25)}") for _ in range(300)})
    log = _log(pairs)
    binary = log.matrix().toarray() > 0
    shared = binary.T.astype(int) @ binary.astype(int)
    best, scores = ItemKNN().fit(log.matrix()).related(np.arange(log.n_items, dtype=np.int64), 5)
    users = shoppers(log)
    for item in range(log.n_items):
        for other, score in zip(best[item], scores[item], strict=True):
            if other >= 0:
                back = score * np.sqrt(users[item] * users[other])
                assert round(float(back)) == shared[item, other]
