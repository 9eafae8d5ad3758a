"""similar-items for the related-items endpoint: the model's neighbours where the data
supports them, and the most popular items of the same category where it does not.

A neighbour list is only as good as what it rests on. With item-kNN's cosine, an item seen
by one shopper is "1.0 similar" to everything else that shopper touched once: whole rows of
ties, which a plain sort then lists in id order. So:

- a neighbour needs at least `MIN_SHARED` shoppers in common with the item (item-kNN's
  cosine gives the number back exactly: co / (c_i^alpha c_j^(1-alpha)), with c the shoppers
  of each item);
- ties are broken by those shared shoppers, then by popularity, never by id;
- an item with fewer than `MIN_EVENTS` shoppers gets its category's best sellers, and a row
  with fewer supported neighbours than asked for is topped up with them, scored below the
  last neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Final

import numpy as np
import numpy.typing as npt

from training.data import Interactions

#: Items with fewer shoppers than this get same-category items instead of learned ones.
MIN_EVENTS: Final = 5
#: Shoppers an item must share with a neighbour for co-occurrence to stand as evidence.
MIN_SHARED: Final = 2


@dataclass(frozen=True)
class RelatedReport:
    """What the data supported: rows replaced whole, and rows topped up."""

    replaced: int
    topped_up: int


def shoppers(log: Interactions) -> npt.NDArray[np.float64]:
    """Each item's number of distinct users."""
    pairs = np.unique(log.user.astype(np.int64) * log.n_items + log.item)
    return np.bincount(pairs % log.n_items, minlength=log.n_items).astype(np.float64)


def related_items(
    log: Interactions,
    categories: dict[str, str],
    popularity: npt.NDArray[np.float32],
    best: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    *,
    alpha: float | None,
    min_events: int = MIN_EVENTS,
    min_shared: int = MIN_SHARED,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], RelatedReport]:
    """Each item's related items, from the recipe's `best` neighbours and their `scores`.

    `alpha` is item-kNN's, whose scores give the shared shoppers back; None for a recipe
    whose scores do not (EASE), whose neighbours then all count as supported."""
    k = best.shape[1]
    users = shoppers(log)
    valid = best >= 0
    safe = np.where(valid, best, 0)
    if alpha is None:
        shared = np.zeros(best.shape)
        supported = valid & np.isfinite(scores)
    else:
        own = users[:, None] ** alpha
        shared = np.rint(np.where(valid, scores, 0.0) * own * users[safe] ** (1.0 - alpha))
        supported = valid & (shared >= min_shared)
    supported &= (users >= min_events)[:, None]
    ranked_score = np.where(supported, scores, -np.inf)
    # Row by row: score, then shared shoppers, then popularity; the unsupported last.
    order = np.lexsort((-np.where(valid, popularity[safe], 0.0), -shared, -ranked_score), axis=1)
    best = np.take_along_axis(np.where(supported, best, -1), order, axis=1)
    scores = np.take_along_axis(ranked_score, order, axis=1).astype(np.float32)
    kept = np.count_nonzero(best >= 0, axis=1)
    short = np.flatnonzero(kept < k)
    if not len(short):
        return best, scores, RelatedReport(0, 0)
    pools = _category_pools(log, categories, popularity)
    total = float(popularity.sum()) or 1.0
    category = [categories.get(i, "") for i in log.item_ids.tolist()]
    for item in short.tolist():
        have = int(kept[item])
        taken = {item, *best[item, :have].tolist()}
        pool = list(islice((c for c in pools[category[item]] if c not in taken), k - have))
        if len(pool) < k - have:  # a small category: top up with the shop's best sellers
            taken.update(pool)
            pool += islice((c for c in pools[""] if c not in taken), k - have - len(pool))
        # Category first, then the shop: never more than the one before, so scores fall.
        share = np.minimum.accumulate(popularity[pool] / total) if pool else np.empty(0)
        if have and len(pool) and share[0] > 0:
            # Below the last neighbour, in popularity order: scores fall down the list.
            share = share * min(1.0, float(scores[item, have - 1]) / float(share[0])) * 0.999
        best[item, have : have + len(pool)] = pool
        scores[item, have : have + len(pool)] = share
    replaced = int(np.count_nonzero(kept[short] == 0))
    return best, scores, RelatedReport(replaced, len(short) - replaced)


def _category_pools(
    log: Interactions, categories: dict[str, str], popularity: npt.NDArray[np.float32]
) -> dict[str, list[int]]:
    """Each category's items, best sellers first (ties by the item's shoppers); "" holds the
    whole shop's."""
    users = shoppers(log)
    order = np.lexsort((-users, -popularity))
    category = np.array([categories.get(i, "") for i in log.item_ids.tolist()], dtype=object)
    pools: dict[str, list[int]] = {"": order.tolist()}
    for name in set(category.tolist()) - {""}:
        pools[name] = order[category[order] == name].tolist()
    return pools
