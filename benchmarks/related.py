"""Related items on real shops: what recs serves for "related items", beside peers.

The question a related-items list answers: a shopper is looking at this item; what will they
look at next? After the cut, each time a scored shopper touched an item and then, the same
(UTC) day, a different one, that pair is a query: the first item asked, the second the
answer sought. Both must be known before the cut. Up to `QUERIES` pairs are drawn (seeded).

Ours is what the API serves: `Recommender.related` over the published version (the batch
row from the online store, or its fallback). The peers are trained on the same events
before the cut:

- co-occurrence: the items most shoppers touched along with it;
- implicit's `CosineRecommender` and `BM25Recommender` (item-item neighbours at their
  defaults), through `similar_items`;
- the best sellers of the item's category (of the whole shop where items have none).

Each list is scored by NDCG@10 of the one item sought (1 / log2(rank + 1) if it is in the
top 10), and by hit rate @10.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import scipy.sparse as sp

from training.data import Interactions
from training.similar import shoppers

Ints = npt.NDArray[np.int64]
Floats64 = npt.NDArray[np.float64]
#: Query pairs scored per data set, at most.
QUERIES: Final = 5000
#: The list length scored.
K: Final = 10
DAY_MS: Final = 86_400_000


def queries(log: Interactions, after: pa.Table, seed: int = 7) -> tuple[Ints, Ints]:
    """(asked, sought) item codes: each scored shopper's item, then the next different item
    they touched the same day, both known before the cut; a seeded sample of `QUERIES`."""
    user_at = {u: i for i, u in enumerate(log.user_ids.tolist())}
    item_at = {u: i for i, u in enumerate(log.item_ids.tolist())}
    users = after["user_id"].to_pylist()
    items = after["item_id"].to_pylist()
    times = after["ts_ms"].to_numpy()
    codes = np.array([user_at.get(u, -1) for u in users], dtype=np.int64)
    order = np.lexsort((np.arange(len(users)), times, codes))
    asked: list[int] = []
    sought: list[int] = []
    previous: tuple[str, str, int] | None = None  # user, item, day
    for at in order.tolist():
        user, item, day = users[at], items[at], int(times[at]) // DAY_MS
        if user not in user_at:
            continue
        if previous is not None and previous[0] == user and previous[2] == day:
            if item == previous[1]:
                continue  # the same item again: not a move to another
            if previous[1] in item_at and item in item_at:
                asked.append(item_at[previous[1]])
                sought.append(item_at[item])
        previous = (user, item, day)
    pairs = np.stack([np.array(asked, np.int64), np.array(sought, np.int64)])
    if pairs.shape[1] > QUERIES:
        keep = np.sort(np.random.default_rng(seed).choice(pairs.shape[1], QUERIES, replace=False))
        pairs = pairs[:, keep]
    return pairs[0], pairs[1]


def scored(lists: Mapping[int, list[int]], asked: Ints, sought: Ints) -> Floats64:
    """Each query's NDCG@10: 1 / log2(rank + 1) of the sought item in the asked item's list
    (rank from 1), 0 where it is not in the top 10."""
    gains = np.zeros(len(asked), dtype=np.float64)
    for n, (item, target) in enumerate(zip(asked.tolist(), sought.tolist(), strict=True)):
        top = [i for i in lists.get(item, []) if i != item][:K]
        if target in top:
            gains[n] = 1.0 / np.log2(top.index(target) + 2)
    return gains


def _binary(log: Interactions) -> sp.csr_matrix:
    """Who touched what, as 1s."""
    binary = log.touched()
    binary.data[:] = 1.0
    return binary


def co_occurrence(log: Interactions, asked: Ints) -> dict[int, list[int]]:
    """The items most shoppers touched along with each asked item (ties by popularity)."""
    binary = _binary(log)
    popularity = shoppers(log)
    items = np.unique(asked)
    together = (binary[:, items].T @ binary).toarray()
    together[np.arange(len(items)), items] = 0.0
    # Popularity, scaled below one shared shopper, only breaks ties.
    together += popularity[None, :] / (popularity.max() + 1.0) * 0.5
    top = np.argsort(-together, axis=1, kind="stable")[:, : K + 1]
    return {int(i): row.tolist() for i, row in zip(items, top, strict=True)}


def implicit_similar(log: Interactions, asked: Ints, kind: str) -> dict[int, list[int]]:
    """implicit's item-item neighbours at their defaults: `cosine` or `bm25`."""
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
    from threadpoolctl import threadpool_limits

    model = CosineRecommender() if kind == "cosine" else BM25Recommender()
    with threadpool_limits(1, "blas"):
        model.fit(_binary(log), show_progress=False)
    items = np.unique(asked)
    ids, _ = model.similar_items(items, N=K + 1)
    return {int(i): [int(x) for x in row if x >= 0] for i, row in zip(items, ids, strict=True)}


def category_best_sellers(
    log: Interactions, asked: Ints, categories: Mapping[str, str]
) -> dict[int, list[int]]:
    """The best sellers (most shoppers) of each asked item's category, or of the shop."""
    popularity = shoppers(log)
    order = np.argsort(-popularity, kind="stable")
    of_item = [categories.get(i) for i in log.item_ids.tolist()]
    by_category: dict[str | None, list[int]] = {}
    for code in order.tolist():
        found = by_category.setdefault(of_item[code], [])
        if len(found) <= K:
            found.append(code)
    shop = order[: K + 1].tolist()
    return {
        int(i): (by_category.get(of_item[i], []) if of_item[i] is not None else shop)
        for i in np.unique(asked).tolist()
    }


def peers(
    log: Interactions, asked: Ints, categories: Mapping[str, str]
) -> dict[str, dict[int, list[int]]]:
    """Each peer's related items for every asked item, in the log's item codes."""
    return {
        "co-occurrence": co_occurrence(log, asked),
        "implicit cosine": implicit_similar(log, asked, "cosine"),
        "implicit BM25": implicit_similar(log, asked, "bm25"),
        "category best sellers": category_best_sellers(log, asked, categories),
    }
