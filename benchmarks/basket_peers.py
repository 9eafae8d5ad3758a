"""The strongest published peers for shops whose customers buy again: TIFU-KNN and UP-CF@r.

Both are written here from their papers (neither ships in a library we can install), with
numpy and scipy, for the quality benchmark only; recs itself does not serve them.

- **TIFU-KNN** (Hu, He, Gao and Zhang, SIGIR 2020). A basket is what a user touched at one
  moment. Each user's baskets, oldest first, are split into `groups` consecutive blocks of
  near-equal size (the later blocks take the extra baskets; a user with fewer baskets than
  groups has one basket a block). Within a block, basket j of m weighs `within^(m-1-j)`; the
  block is the mean of its weighted basket vectors. Block i of k weighs `group^(k-1-i)`; the
  user's vector is the sum over blocks, over k. The score is
  `alpha * user + (1 - alpha) * mean of the `neighbours` nearest user vectors`, nearest by
  Euclidean distance (the user among them), as the reference implementation's KD-tree finds.
- **UP-CF@r** (Faggioli, Polato and Aiolli, UMAP 2020). Each user's recency-aware popularity
  `P_v(i)` is the share of their last `r` baskets that hold item i. Users are compared by the
  asymmetric cosine of their item sets, `|I_u & I_v| / (|I_u|^a * |I_v|^(1-a))`, raised to
  the locality `q`; the score is `sum_v sim(u, v)^q * P_v(i)`, the user among the v.

Each is tuned on a small grid on the benchmark's validation split, as its authors tune it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from training.data import Interactions

Ints = npt.NDArray[np.int64]
#: Scored users per block of the dense user x user and user x item products.
BLOCK: Final = 1024


def baskets(log: Interactions, mask: npt.NDArray[np.bool_]) -> tuple[Ints, Ints, Ints, Ints]:
    """The distinct (user, basket, item) of the events in `mask`: each event's user, the
    index of its basket within the user's baskets (oldest 0), the item, and each user's
    basket count. A basket is one user's events at one moment."""
    chosen = np.flatnonzero(mask)
    order = chosen[np.lexsort((log.item[chosen], log.ts_ms[chosen], log.user[chosen]))]
    user, ts, item = log.user[order].astype(np.int64), log.ts_ms[order], log.item[order]
    new_basket = np.ones(len(order), dtype=bool)
    new_basket[1:] = (user[1:] != user[:-1]) | (ts[1:] != ts[:-1])
    basket_global = np.cumsum(new_basket) - 1
    first_basket_of_user = np.full(log.n_users, -1, dtype=np.int64)
    # The first basket index seen for each user (events are sorted by user).
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    first_basket_of_user[user[starts]] = basket_global[starts]
    basket = basket_global - first_basket_of_user[user]
    counts = np.zeros(log.n_users, dtype=np.int64)
    np.maximum.at(counts, user, basket + 1)
    # An item twice in one basket counts once.
    keys = np.unique(np.stack([user, basket, item.astype(np.int64)]), axis=1)
    return keys[0], keys[1], keys[2], counts


def tifu_vectors(
    log: Interactions,
    mask: npt.NDArray[np.bool_],
    *,
    groups: int,
    within: float,
    group: float,
) -> sp.csr_matrix:
    """Every user's TIFU-KNN vector (users x items) from the events in `mask`."""
    user, basket, item, counts = baskets(log, mask)
    n = counts[user]
    k = np.minimum(n, groups)  # blocks each user has
    base = n // k
    extra = n - base * k  # the last `extra` blocks hold base + 1 baskets
    small_blocks = k - extra
    in_small = basket < small_blocks * base
    past_small = basket - small_blocks * base  # position after the small blocks
    block = np.where(in_small, basket // base, small_blocks + past_small // (base + 1))
    size = np.where(in_small, base, base + 1)
    start = np.where(
        in_small, block * base, small_blocks * base + (block - small_blocks) * (base + 1)
    )
    position = basket - start
    weight = np.power(within, size - 1 - position) / size * np.power(group, k - 1 - block) / k
    vectors = sp.csr_matrix(
        (weight.astype(np.float32), (user, item)), shape=(log.n_users, log.n_items)
    )
    vectors.sum_duplicates()
    return vectors


def _blocks(rows: Ints) -> Iterator[Ints]:
    for start in range(0, len(rows), BLOCK):
        yield rows[start : start + BLOCK]


def tifu_scores(
    vectors: sp.csr_matrix, rows: Ints, *, neighbours: int, alpha: float
) -> Iterator[tuple[Ints, npt.NDArray[np.float32]]]:
    """TIFU-KNN scores for `rows`, a block at a time: (the block's rows, their scores)."""
    norms = np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel()
    k = min(neighbours, vectors.shape[0])
    for chunk in _blocks(rows):
        mine = vectors[chunk]
        # Squared Euclidean distance to every user: |u|^2 + |v|^2 - 2 u.v
        distance = norms[chunk][:, None] + norms[None, :] - 2.0 * (mine @ vectors.T).toarray()
        nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
        near = sp.csr_matrix(
            (
                np.full(nearest.size, 1.0 / k, dtype=np.float32),
                (np.repeat(np.arange(len(chunk)), k), nearest.ravel()),
            ),
            shape=(len(chunk), vectors.shape[0]),
        )
        scores = alpha * mine.toarray() + (1.0 - alpha) * (near @ vectors).toarray()
        yield chunk, scores.astype(np.float32)


def upcf_scores(
    log: Interactions,
    mask: npt.NDArray[np.bool_],
    rows: Ints,
    *,
    recent: int,
    asymmetry: float,
    locality: float,
) -> Iterator[tuple[Ints, npt.NDArray[np.float32]]]:
    """UP-CF@r scores for `rows`, a block at a time: (the block's rows, their scores)."""
    user, basket, item, counts = baskets(log, mask)
    shape = (log.n_users, log.n_items)
    bought = sp.csr_matrix((np.ones(len(user), np.float32), (user, item)), shape=shape)
    bought.sum_duplicates()
    bought.data[:] = 1.0
    last = basket >= counts[user] - recent
    window = np.minimum(counts[user[last]], recent).astype(np.float32)
    popularity = sp.csr_matrix((1.0 / window, (user[last], item[last])), shape=shape)
    popularity.sum_duplicates()
    sizes = np.asarray(bought.sum(axis=1)).ravel()
    for chunk in _blocks(rows):
        shared = (bought[chunk] @ bought.T).toarray()
        denominator = (
            np.power(np.maximum(sizes[chunk], 1.0), asymmetry)[:, None]
            * np.power(np.maximum(sizes, 1.0), 1.0 - asymmetry)[None, :]
        )
        similarity = np.power(shared / denominator, locality)
        yield chunk, np.asarray(similarity @ popularity, dtype=np.float32)
