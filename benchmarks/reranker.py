"""The learned peer: every cheap generator's candidates, reranked by LightGBM lambdarank.

The two-stage design that wins most retail recommendation contests (candidates from simple
generators, then a gradient-boosted ranker over hand-made features), set up as a careful user
would set it up, for the quality benchmark only; recs itself does not serve it.

- **Candidates**, per user: every item the user touched; the 50 best item-kNN items from the
  user's history (co-occurrence cosine, recs' own `ItemKNN`); the 50 most popular items of
  the last 30 days.
- **Features** (`FEATURES`), from the events before the moment of ranking only: the user's
  count of the item, its share of the user's events, how long since the user first and last
  touched it and their mean gap between touches; the item-kNN score and its rank; the
  repeat-then-popularity rank (the baseline's own order, so the model starts from it); the
  item's popularity over 7, 30, 90 and 365 days, its trend (7 over 90) and repeat rate; the
  user's events, baskets, distinct items, and days since their first and last event.
- **Training**: label windows at the end of the training period. A window of length `span`
  (a fifth of the period) ending at `end` labels what each user touched in it, with features
  from before it; `WINDOWS` windows end a half-span apart. The number of boosting rounds is
  chosen on the benchmark's validation split (inside the training period), then the model is
  refitted on windows ending at the cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from training.data import Interactions
from training.recipes import ItemKNN

Ints = npt.NDArray[np.int64]
DAY_MS: Final = 86_400_000
#: Candidates from item-kNN and from popularity, per user.
PER_GENERATOR: Final = 50
#: Label windows stacked for training, each ending half a window before the next.
WINDOWS: Final = 5
#: The label window's length, as a share of the training period.
SPAN_SHARE: Final = 0.2
ROUNDS: Final = (50, 100, 200)
FEATURES: Final = (
    "baseline rank",
    "count share",
    "count",
    "days since last touch",
    "days since first touch",
    "mean days between touches",
    "days since last over mean gap",
    "item-kNN score",
    "item-kNN rank",
    "popularity 7 days",
    "popularity 30 days",
    "popularity 90 days",
    "popularity 365 days",
    "trend 7 over 90 days",
    "item's users",
    "item's repeat rate",
    "user's baskets",
    "user's events",
    "user's items",
    "days since user's last event",
    "days since user's first event",
)
#: LightGBM's settings, its documented lambdarank defaults but for a floor on leaf size
#: (a shop's few thousand users otherwise overfit), two threads and a seed.
PARAMS: Final = {
    "objective": "lambdarank",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "lambdarank_truncation_level": 20,
    "num_threads": 2,
    "seed": 1,
    "deterministic": True,
    "verbose": -1,
}
_MISSING: Final = 9999.0


@dataclass(frozen=True)
class Candidates:
    """Each user's candidates as flat (row, item) pairs, rows in the order asked."""

    row: Ints
    item: Ints
    sizes: Ints


def _group_ranks(row: Ints, value: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each entry's rank within its row by `value`, largest first (0 is the best)."""
    order = np.lexsort((-value, row))
    starts = np.r_[0, np.flatnonzero(row[order][1:] != row[order][:-1]) + 1]
    counts = np.diff(np.r_[starts, len(order)])
    rank = np.empty(len(order), dtype=np.float64)
    rank[order] = np.arange(len(order)) - np.repeat(starts, counts)
    return rank


def features(
    log: Interactions, before_ms: int, users: Ints
) -> tuple[Candidates, npt.NDArray[np.float32]]:
    """The candidates of `users` and their feature matrix, from events before `before_ms`."""
    mask = log.ts_ms < before_ms
    user, item, ts = (
        log.user[mask].astype(np.int64),
        log.item[mask].astype(np.int64),
        log.ts_ms[mask],
    )
    n_users, n_items = log.n_users, log.n_items
    counts = sp.csr_matrix((np.ones(len(item), np.float64), (user, item)), shape=(n_users, n_items))
    counts.sum_duplicates()
    binary = counts.copy()
    binary.data[:] = 1.0
    # First and last touch of each (user, item), found by sorted pair keys.
    order = np.lexsort((ts, item, user))
    key = user[order] * n_items + item[order]
    first_at = np.r_[True, key[1:] != key[:-1]]
    last_at = np.r_[key[1:] != key[:-1], True]
    pair_key, pair_first, pair_last = key[first_at], ts[order][first_at], ts[order][last_at]
    popularity = {
        days: np.bincount(item[ts >= before_ms - days * DAY_MS], minlength=n_items).astype(
            np.float64
        )
        for days in (7, 30, 90, 365)
    }
    item_users = np.asarray(binary.sum(axis=0)).ravel()
    repeat_rate = np.asarray((counts > 1).sum(axis=0)).ravel() / np.maximum(item_users, 1)
    baskets = np.unique(np.stack([user, ts]), axis=1)
    user_baskets = np.bincount(baskets[0], minlength=n_users).astype(np.float64)
    user_events = np.bincount(user, minlength=n_users).astype(np.float64)
    user_items = np.diff(binary.indptr).astype(np.float64)
    user_last = np.full(n_users, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(user_last, user, ts)
    user_first = np.full(n_users, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(user_first, user, ts)
    # A user with nothing before the moment: as if their first and last event were now.
    user_last[user_events == 0] = user_first[user_events == 0] = before_ms

    knn = ItemKNN(neighbours=100, alpha=0.5).fit(binary.tocsr().astype(np.float32))
    decayed = sp.csr_matrix(
        (np.exp2(-(before_ms - ts) / DAY_MS / 90.0), (user, item)), shape=(n_users, n_items)
    )
    decayed.sum_duplicates()
    knn_scores = (decayed[users] @ knn.neighbours).tocsr()
    top_popular = np.argsort(-popularity[30], kind="stable")[:PER_GENERATOR]
    top_popular = top_popular[popularity[30][top_popular] > 0]  # an unsold item is no one's

    rows, items = [], []
    for r, u in enumerate(users.tolist()):
        own = binary.indices[binary.indptr[u] : binary.indptr[u + 1]]
        start, stop = knn_scores.indptr[r], knn_scores.indptr[r + 1]
        near, weight = knn_scores.indices[start:stop], knn_scores.data[start:stop]
        if len(near) > PER_GENERATOR:
            near = near[np.argpartition(-weight, PER_GENERATOR - 1)[:PER_GENERATOR]]
        chosen = np.unique(np.concatenate([own, near, top_popular]))
        rows.append(np.full(len(chosen), r, dtype=np.int64))
        items.append(chosen.astype(np.int64))
    row, cand = np.concatenate(rows), np.concatenate(items)
    pu = users[row]

    count = np.asarray(counts[pu, cand]).ravel()
    at = np.minimum(np.searchsorted(pair_key, pu * n_items + cand), max(len(pair_key) - 1, 0))
    has = (pair_key[at] == pu * n_items + cand) if len(pair_key) else np.zeros(len(pu), bool)
    since_last = np.where(has, (before_ms - pair_last[at]) / DAY_MS, _MISSING)
    since_first = np.where(has, (before_ms - pair_first[at]) / DAY_MS, _MISSING)
    gap = np.where(
        has & (count > 1),
        (pair_last[at] - pair_first[at]) / DAY_MS / np.maximum(count - 1, 1),
        _MISSING,
    )
    knn_score = np.asarray(knn_scores[row, cand]).ravel()
    baseline = count * (popularity[30].max() + 1.0) + popularity[30][cand]
    share = count / np.maximum(user_events[pu], 1.0)
    table = np.stack(
        [
            _group_ranks(row, baseline),
            share,
            count,
            since_last,
            since_first,
            gap,
            since_last / np.maximum(gap, 1e-3),
            knn_score,
            _group_ranks(row, knn_score),
            *(popularity[days][cand] for days in (7, 30, 90, 365)),
            popularity[7][cand] / np.maximum(popularity[90][cand], 1.0),
            item_users[cand],
            repeat_rate[cand],
            user_baskets[pu],
            user_events[pu],
            user_items[pu],
            (before_ms - user_last[pu]) / DAY_MS,
            (before_ms - user_first[pu]) / DAY_MS,
        ],
        axis=1,
    ).astype(np.float32)
    return Candidates(row, cand, np.bincount(row, minlength=len(users))), table


def training_set(
    log: Interactions, end_ms: int, start_ms: int
) -> tuple[npt.NDArray[np.float32], Ints, Ints]:
    """Features, labels (touched in the window: 1) and group sizes of the label windows
    ending at and before `end_ms`, over the period that began at `start_ms`."""
    span = max(DAY_MS, int((end_ms - start_ms) * SPAN_SHARE))
    tables, labels, groups = [], [], []
    for j in range(WINDOWS):
        stop = end_ms - j * span // 2
        begin = stop - span
        if begin <= start_ms:
            break
        inside = (log.ts_ms >= begin) & (log.ts_ms < stop)
        known = np.zeros(log.n_users, dtype=bool)
        known[log.user[log.ts_ms < begin]] = True
        users = np.unique(log.user[inside]).astype(np.int64)
        users = users[known[users]]
        if not len(users):
            continue
        found, table = features(log, begin, users)
        truth = sp.csr_matrix(
            (np.ones(int(inside.sum())), (log.user[inside], log.item[inside])),
            shape=(log.n_users, log.n_items),
        )
        labels.append((np.asarray(truth[users[found.row], found.item]).ravel() > 0).astype(int))
        tables.append(table)
        groups.append(found.sizes[found.sizes > 0])
    if not tables:
        return (
            np.empty((0, len(FEATURES)), np.float32),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
        )
    return np.vstack(tables), np.concatenate(labels), np.concatenate(groups)


def fit(log: Interactions, end_ms: int, rounds: int) -> object | None:
    """A lambdarank model on the label windows ending at `end_ms` (None: no window fits)."""
    import lightgbm

    start_ms = int(log.ts_ms.min())
    table, labels, groups = training_set(log, end_ms, start_ms)
    if not len(labels) or not labels.any():
        return None
    data = lightgbm.Dataset(table, labels, group=groups, feature_name=_names())
    return lightgbm.train(dict(PARAMS), data, num_boost_round=rounds)


def _names() -> list[str]:
    return [name.replace(" ", "_") for name in FEATURES]


def rank(
    model: object, log: Interactions, now_ms: int, users: Ints, k: int, rounds: int | None = None
) -> Ints:
    """Each user's top k by the model, with its first `rounds` trees (all: None), -1 where a
    user has fewer candidates."""
    found, table = features(log, now_ms, users)
    scores = np.asarray(model.predict(table, num_iteration=rounds), dtype=np.float64)  # type: ignore[attr-defined]
    best = np.full((len(users), k), -1, dtype=np.int64)
    order = np.lexsort((-scores, found.row))
    position = _group_ranks(found.row, scores).astype(np.int64)
    keep = position[order] < k
    best[found.row[order][keep], position[order][keep]] = found.item[order][keep]
    return best
