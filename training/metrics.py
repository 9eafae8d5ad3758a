"""Offline metrics under Amazon Personalize's names, plus recall@K.

Relevance is binary: an item is relevant to a user if one of the user's held-out events
touched it. Each metric is the mean over evaluated users; coverage is the share of the
catalog that appears in anyone's top 25.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

#: Recommendations evaluated, and written to the batch, per user and per item.
K: Final = 25
#: Users scored on a holdout.
EVAL_USERS: Final = 5000
CUTOFFS: Final = (5, 10, K)
METRIC_NAMES: Final = (
    "coverage",
    "mean_reciprocal_rank_at_25",
    *(f"normalized_discounted_cumulative_gain_at_{k}" for k in CUTOFFS),
    *(f"precision_at_{k}" for k in CUTOFFS),
    *(f"recall_at_{k}" for k in (*CUTOFFS, 20)),
)


def hits(recommended: npt.NDArray[np.int64], truth: sp.csr_matrix) -> npt.NDArray[np.bool_]:
    """hits[u, r]: whether the r-th recommendation to user u is in u's truth (-1 = none)."""
    n_items = truth.shape[1]
    truth = truth.tocsr()
    truth.sort_indices()
    rows = np.repeat(np.arange(truth.shape[0], dtype=np.int64), np.diff(truth.indptr))
    truth_keys = rows * n_items + truth.indices.astype(np.int64)  # ascending: rows, then items
    keys = np.arange(recommended.shape[0], dtype=np.int64)[:, None] * n_items + recommended
    position = np.searchsorted(truth_keys, keys)
    position = np.minimum(position, max(len(truth_keys) - 1, 0))
    found = truth_keys[position] == keys if len(truth_keys) else np.zeros(keys.shape, dtype=bool)
    return np.asarray(found & (recommended >= 0))


def evaluate(recommended: npt.NDArray[np.int64], truth: sp.csr_matrix) -> dict[str, float]:
    """All metrics for top-25 (or longer) recommendation lists, one row per evaluated user."""
    if recommended.shape[1] < max(CUTOFFS):
        raise ValueError(f"evaluation needs at least {max(CUTOFFS)} recommendations per user")
    truth = truth.tocsr()
    truth.sort_indices()
    found = hits(recommended[:, : max(CUTOFFS)], truth)
    relevant = np.diff(truth.indptr).astype(np.float64)
    has_truth = relevant > 0
    found, relevant = found[has_truth], relevant[has_truth]
    if not has_truth.any():
        # Nobody to score (say, no user tried anything new): every hit-based metric is 0.
        found, relevant = np.zeros((1, found.shape[1]), dtype=bool), np.ones(1)
    metrics: dict[str, float] = {}
    shown = recommended[:, : max(CUTOFFS)]
    metrics["coverage"] = len(np.unique(shown[shown >= 0])) / truth.shape[1]
    first = np.where(found.any(axis=1), found.argmax(axis=1) + 1, np.inf)
    metrics["mean_reciprocal_rank_at_25"] = float(np.mean(1.0 / first))
    for k in CUTOFFS:
        top = found[:, :k]
        metrics[f"normalized_discounted_cumulative_gain_at_{k}"] = float(
            np.mean(_ndcg(found, relevant, k))
        )
        metrics[f"precision_at_{k}"] = float(np.mean(top.sum(axis=1) / k))
    for k in (*CUTOFFS, 20):
        metrics[f"recall_at_{k}"] = float(np.mean(found[:, :k].sum(axis=1) / relevant))
    return {name: metrics[name] for name in METRIC_NAMES}


def _ndcg(
    found: npt.NDArray[np.bool_], relevant: npt.NDArray[np.float64], k: int
) -> npt.NDArray[np.float64]:
    """Each row's NDCG@k, from its hits and its number of relevant items (at least 1)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (found[:, :k] * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(relevant, k).astype(np.int64) - 1]
    return np.asarray(dcg / ideal, dtype=np.float64)


def user_ndcg(
    recommended: npt.NDArray[np.int64], truth: sp.csr_matrix, k: int
) -> npt.NDArray[np.float64]:
    """NDCG@k of each user who has held-out events, in row order: the per-user values whose
    mean `evaluate` reports, for paired comparisons and their intervals."""
    truth = truth.tocsr()
    truth.sort_indices()
    relevant = np.diff(truth.indptr).astype(np.float64)
    has_truth = relevant > 0
    found = hits(recommended[:, :k], truth)[has_truth]
    return _ndcg(found, relevant[has_truth], k)


#: Held-out users (with events to score) below which a sample is too thin to judge on.
MIN_USERS: Final = 200
#: Bootstrap resamples of a paired comparison's interval.
RESAMPLES: Final = 1000


@dataclass(frozen=True)
class Paired:
    """The candidate against another model on the same users: the mean difference of their
    per-user scores, and its 95% bootstrap interval."""

    users: int
    difference: float
    low: float
    high: float

    @property
    def thin(self) -> bool:
        """Too few users to judge on."""
        return self.users < MIN_USERS

    def __str__(self) -> str:
        return (
            f"difference {self.difference:+.4f}, 95% interval {self.low:+.4f} to "
            f"{self.high:+.4f}, over {self.users:,} users"
        )

    def to_json(self) -> dict[str, float | int]:
        """As the manifest's gate entry holds it."""
        return {"users": self.users, "difference": self.difference, "low": self.low,
                "high": self.high}  # fmt: skip


def paired(
    candidate: npt.NDArray[np.float64], other: npt.NDArray[np.float64], seed: int = 0
) -> Paired:
    """A paired comparison of two models' per-user scores on the same users (a seeded
    bootstrap over users, so the same scores give the same interval)."""
    differences = candidate - other
    if not len(differences):
        return Paired(0, 0.0, 0.0, 0.0)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(differences), size=(RESAMPLES, len(differences)))
    means = differences[draws].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return Paired(len(differences), float(differences.mean()), float(low), float(high))
