"""The blend of `training.blend`, for many users at once: sparse matrices, a block at a time.

`recommend_users` is what the batch output and every offline score use, so what is measured
is what is served. Per block of users it builds the candidates (the recipe's top
`blend.candidates` among the items a user has not touched, the users' own items, the top
trending items) as sparse matrices, one per
component, and ranks their weighted sum. A parity test holds it to `blend.recommend_one`, the
realtime path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from training.blend import (
    Blend,
    History,
    fill,
    held_back,
    row_positions,
    top_by_score,
    trending_scores,
)
from training.data import Interactions, Split
from training.ranker import DAY_MS, NEVER, SHORTLIST, Trees, squash, table
from training.recipes import Recipe, sparse_top_k

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
#: Users scored at once: a block of sparse candidate rows stays small.
BLOCK: Final = 2048


@dataclass(frozen=True)
class Components:
    """One block of users' candidates, component by component, all with the same shape."""

    collab: sp.csr_matrix
    own: sp.csr_matrix
    recency: sp.csr_matrix
    trending: sp.csr_matrix
    seen: sp.csr_matrix
    purchased: sp.csr_matrix
    #: Age in days of each own entry's last touch (+1, so that 0 days is not a zero).
    age_days: sp.csr_matrix
    #: How often the user touched each own entry.
    count: sp.csr_matrix


def history_rows(history: History, users: Ints, n_items: int) -> sp.csr_matrix:
    """The history entries of some users as a CSR matrix whose data are entry positions."""
    positions, lengths = row_positions(history.indptr, users)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    # Positions are stored + 1, so that position 0 is not an explicit zero.
    return sp.csr_matrix(
        (positions.astype(np.float64) + 1, history.items[positions], indptr),
        shape=(len(users), n_items),
    )


def _with_data(structure: sp.csr_matrix, data: npt.NDArray[np.float64]) -> sp.csr_matrix:
    out = structure.copy()
    out.data = data.astype(np.float64)
    out.eliminate_zeros()
    return out


def components(
    blend: Blend,
    recipe: Recipe | None,
    users: Ints,
    rows: sp.csr_matrix,
    history: History,
    trending: Floats,
    trending_top: Ints,
    now_ms: int,
) -> Components:
    """The candidates of a block of users and their four components."""
    n, n_items = len(users), len(trending)
    held = history_rows(history, users, n_items)
    if recipe is not None and blend.collab > 0:
        ids, scores = recipe.recommend(users, rows, blend.candidates, exclude=held)
        valid = (ids >= 0) & np.isfinite(scores) & (scores > 0)
        best = np.where(valid[:, :1], scores[:, :1], 1.0)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            values = np.where(valid, scores / best, 0.0)  # invalid slots are dropped
        r, c = np.nonzero(valid)
        collab = sp.csr_matrix((values[r, c], (r, ids[r, c])), shape=(n, n_items))
    else:
        collab = sp.csr_matrix((n, n_items))
    positions = held.data.astype(np.int64) - 1
    counts = np.log1p(history.counts[positions].astype(np.float64))
    own = _with_data(held, counts)
    if own.nnz:
        top = np.asarray(own.max(axis=1).todense()).ravel()
        own = sp.diags(np.where(top > 0, 1.0 / np.maximum(top, 1e-300), 0.0)) @ own
    age = np.maximum(0, now_ms - history.last_ms[positions]) / DAY_MS
    recency = _with_data(held, np.exp2(-age / blend.recency_days))
    seen = _with_data(held, np.ones(len(positions)))
    purchased = _with_data(held, history.purchased[positions].astype(np.float64))
    age_days = _with_data(held, age + 1.0)
    count = _with_data(held, history.counts[positions].astype(np.float64))
    top_rows = np.repeat(np.arange(n), len(trending_top))
    top_cols = np.tile(trending_top, n)
    tops = sp.csr_matrix((np.ones(len(top_rows)), (top_rows, top_cols)), shape=(n, n_items))
    union = (abs(collab) + seen + tops).tocsr()
    union.data[:] = 1.0
    trend = union.multiply(trending.astype(np.float64)[None, :]).tocsr()
    return Components(
        collab.tocsr(),
        own.tocsr(),
        recency.tocsr(),
        trend,
        seen.tocsr(),
        purchased.tocsr(),
        age_days.tocsr(),
        count.tocsr(),
    )


def rank(
    blend: Blend,
    parts: Components,
    k: int,
    ranker: Trees | None = None,
    stats: npt.NDArray[np.float64] | None = None,
) -> tuple[Ints, Floats]:
    """The k best candidates of each user under the blend's weights and policy, ordered by
    the blend's score, or by the ranker's (`stats`: the item statistics it reads)."""
    if ranker is None:
        return sparse_top_k(allowed_scores(blend, parts), k)
    assert stats is not None, "a ranker needs the item statistics"
    return rank_entries(ranker, entries(blend, parts, stats), parts.seen.shape, k)


def rank_entries(
    ranker: Trees, found: Entries, shape: tuple[int, int], k: int
) -> tuple[Ints, Floats]:
    """The k best of each row's entries by the ranker's score."""
    scores = squash(ranker.raw(found.features))
    return sparse_top_k(sp.csr_matrix((scores, (found.row, found.item)), shape=shape), k)


@dataclass(frozen=True)
class Entries:
    """The candidates a blend's policy lets through, as (row, item) pairs in row order, with
    their `ranker.FEATURES`."""

    row: Ints
    item: Ints
    features: Floats


def entries(blend: Blend, parts: Components, stats: npt.NDArray[np.float64]) -> Entries:
    """Each user's shortlist: the blend's best `SHORTLIST` of the candidates its policy lets
    through (score above 0), with the features the ranker reads, as `blend.recommend_one`
    computes them for one user."""
    # The ranker reorders each user's shortlist: the blend's best `SHORTLIST`, as ranked
    # realtime (float32 scores, ties by code).
    best, _ = sparse_top_k(allowed_scores(blend, parts), SHORTLIST)
    row, slot = np.nonzero(best >= 0)
    item = best[row, slot]
    order = np.lexsort((item, row))
    row, item = row[order].astype(np.int64), item[order].astype(np.int64)

    def at(matrix: sp.csr_matrix) -> npt.NDArray[np.float64]:
        return np.asarray(matrix[row, item], dtype=np.float64).ravel()

    comps = np.column_stack(
        [at(parts.collab), at(parts.own), at(parts.recency), at(parts.trending)]
    )
    seen = at(parts.seen) > 0
    ages = parts.age_days
    has = np.diff(ages.indptr) > 0
    idle = np.full(ages.shape[0], NEVER)
    if ages.nnz:
        idle[has] = np.minimum.reduceat(ages.data, ages.indptr[:-1][has]) - 1.0
    user = np.column_stack(
        [
            np.diff(parts.seen.indptr).astype(np.float64),
            np.asarray(parts.count.sum(axis=1), dtype=np.float64).ravel(),
            idle,
        ]
    )[row]
    features = table(
        comps,
        blend.weights,
        seen,
        at(parts.purchased) > 0,
        at(parts.age_days) - 1.0,
        at(parts.count),
        item,
        stats,
        user,
    )
    return Entries(row, item, features)


def allowed_scores(blend: Blend, parts: Components) -> sp.csr_matrix:
    """The blend's score of every candidate its policy lets through (others dropped)."""
    score = (
        blend.collab * parts.collab
        + blend.own * parts.own
        + blend.recency * parts.recency
        + blend.trending * parts.trending
    ).tocsr()
    if blend.repeats == "exclude-seen":
        score = score - score.multiply(parts.seen)
    elif blend.repeats == "exclude-purchased":
        score = score - score.multiply(parts.purchased)
    else:
        recent = parts.age_days.copy()
        recent.data = (recent.data - 1.0 < blend.rebuy_after_hours / 24).astype(np.float64)
        cooling = parts.purchased.multiply(recent)
        score = score - score.multiply(cooling)
    score = score.tocsr()
    score.data[score.data <= 0] = 0.0
    score.eliminate_zeros()
    return score


def _fill(
    blend: Blend,
    best: Ints,
    scores: Floats,
    users: Ints,
    history: History,
    trending: Floats,
    now_ms: int,
) -> None:
    """Fill rows that scored fewer than k items with trending ones, in place, as realtime
    answers are filled (`blend.fill`)."""
    k = best.shape[1]
    counts = (best >= 0).sum(axis=1)
    for row in np.flatnonzero((counts > 0) & (counts < k)).tolist():
        blocked = held_back(blend, history.user(int(users[row])), now_ms)
        n = int(counts[row])
        found = [(int(c), float(s)) for c, s in zip(best[row, :n], scores[row, :n], strict=True)]
        filled = fill(found, trending, k, blocked.tolist())
        best[row, : len(filled)] = [c for c, _ in filled]
        scores[row, : len(filled)] = [s for _, s in filled]


def blocks(n: int, size: int = BLOCK) -> Iterator[slice]:
    """Consecutive slices covering range(n)."""
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def rank_split(
    blend: Blend,
    recipe: Recipe | None,
    log: Interactions,
    split: Split,
    history: History,
    matrix: sp.csr_matrix,
    k: int,
    ranker: Trees | None = None,
) -> Ints:
    """What `blend` (reordered by `ranker`, if any) serves each of a split's scored users
    from what they did before its cut (`history` and `matrix` are of the training side): the
    batch output's own path."""
    users = split.test_users.astype(np.int64)
    now_ms = int(split.cut_ms if split.cut_ms is not None else log.ts_ms[split.train].max())
    trending = trending_scores(
        log.item[split.train],
        log.ts_ms[split.train],
        log.n_items,
        blend.trending_half_life_days,
        now_ms,
    )
    best, _ = recommend_users(
        blend, recipe, users, matrix[users], history, trending, now_ms, k, ranker
    )
    return best


def recommend_users(
    blend: Blend,
    recipe: Recipe | None,
    users: Ints,
    rows: sp.csr_matrix,
    history: History,
    trending: Floats,
    now_ms: int,
    k: int,
    ranker: Trees | None = None,
) -> tuple[Ints, Floats]:
    """Top k per user (codes, scores), -1 where fewer items score above 0; in the ranker's
    order where one is given."""
    trending_top = top_by_score(trending, blend.candidates)
    stats = None if ranker is None else history.item_stats(len(trending), now_ms)
    found_best, found_scores = [], []
    for part in blocks(len(users)):
        parts = components(
            blend, recipe, users[part], rows[part], history, trending, trending_top, now_ms
        )
        best, scores = rank(blend, parts, k, ranker, stats)
        _fill(blend, best, scores, users[part], history, trending, now_ms)
        found_best.append(best)
        found_scores.append(scores)
    if not found_best:
        return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
    return np.vstack(found_best), np.vstack(found_scores)
