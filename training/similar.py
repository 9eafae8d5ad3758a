"""similar-items for the related-items endpoint: the model's neighbours, or, for items with
too little data to have any, the most popular items of the same category."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from training.data import Interactions

#: Items seen in fewer events than this get same-category neighbours instead of learned ones.
MIN_EVENTS: Final = 5


def category_fallback(
    log: Interactions,
    categories: dict[str, str],
    popularity: npt.NDArray[np.float32],
    best: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    min_events: int = MIN_EVENTS,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], int]:
    """Replace the rows of thin items; return the new rows and how many were replaced.

    Fallback scores are the neighbours' popularity shares, so they read as "how strongly",
    like learned scores, without claiming a similarity that was never measured.
    """
    counts = np.bincount(log.item, minlength=log.n_items)
    thin = np.flatnonzero((counts < min_events) | (best[:, 0] < 0))
    if not len(thin):
        return best, scores, 0
    k = best.shape[1]
    category = np.array([categories.get(i, "") for i in log.item_ids.tolist()], dtype=object)
    order = np.argsort(-popularity, kind="stable")
    total = float(popularity.sum()) or 1.0
    by_category: dict[str, npt.NDArray[np.int64]] = {}
    best, scores = best.copy(), scores.copy()
    for item in thin.tolist():
        name = category[item]
        if name not in by_category:
            by_category[name] = order[category[order] == name] if name else order
        pool = by_category[name]
        pool = pool[pool != item][:k]
        if len(pool) < k:  # a small category: top up with the shop's most popular items
            extra = order[(order != item) & ~np.isin(order, pool)][: k - len(pool)]
            pool = np.concatenate([pool, extra])
        best[item] = -1
        scores[item] = -np.inf
        best[item, : len(pool)] = pool
        scores[item, : len(pool)] = popularity[pool] / total
    return best, scores, len(thin)
