"""The promotion gate: a new model goes live only if it beats, on the same holdout, both the
model in production and popularity.

The production model is whatever `recs publish` last published (`models/production.json`,
written by serving). It is loaded from its own artifacts, as serving loads it, and scored on
the new model's holdout: each user is answered from their history before the cut, items are
matched by id, so both models answer the same question.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from common.progress import Progress, quiet
from ingestion.contract import EVENT_TYPES
from ingestion.lake import Lake, damaged, read_json
from training.artifacts import PRODUCTION
from training.data import Interactions, Split
from training.metrics import evaluate
from training.published import PublishedModel


def production_version(lake: Lake) -> str | None:
    """The version `recs publish` last made live, if any."""
    try:
        production = read_json(lake, PRODUCTION)
    except FileNotFoundError:
        return None
    if not isinstance(production, dict) or not isinstance(production.get("version"), str):
        raise damaged(lake, PRODUCTION, "it names no version")
    return str(production["version"])


def newer_split(log: Interactions, split: Split, after_ms: int) -> Split | None:
    """The split with only held-out events newer than `after_ms` as truth, or None if none.

    The production model trained on everything up to its own last event; held-out events
    it already saw would flatter it. Comparing on newer events only is fair to both.
    """
    held = ~split.train & (log.ts_ms > after_ms)
    row_of = np.full(log.n_users, -1, dtype=np.int64)
    row_of[split.test_users] = np.arange(split.n_test)
    held &= row_of[log.user] >= 0
    if not held.any():
        return None
    truth = sp.csr_matrix(
        (np.ones(int(held.sum()), dtype=np.float32), (row_of[log.user[held]], log.item[held])),
        shape=split.truth.shape,
    )
    truth.sum_duplicates()
    truth.data[:] = 1.0
    return replace(split, truth=truth)


def user_events(log: Interactions, mask: npt.NDArray[np.bool_]) -> dict[int, list[int]]:
    """Each user's event positions within `mask`, oldest first."""
    chosen = np.flatnonzero(mask)
    order = chosen[np.lexsort((log.ts_ms[chosen], log.user[chosen]))]
    users = log.user[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    return {
        int(users[start]): order[start:stop].tolist()
        for start, stop in zip([0, *bounds.tolist()], [*bounds.tolist(), len(order)], strict=True)
        if stop > start
    }


def score_published(
    model: PublishedModel,
    log: Interactions,
    split: Split,
    k: int,
    progress: Progress = quiet,
) -> dict[str, float]:
    """Metrics of a published version on this split, each user answered from their history
    before the cut alone (the version's own history may reach past it): items matched by id."""
    kinds = list(EVENT_TYPES)
    scored = np.zeros(log.n_users, dtype=bool)
    scored[split.test_users] = True
    # Only the scored users' events: on a large shop that is a few thousand users of many.
    events = user_events(log, split.train & scored[log.user])
    to_new = {item: code for code, item in enumerate(log.item_ids.tolist())}
    now_ms = int(split.cut_ms or log.ts_ms.max())
    recommended = np.full((split.n_test, k), -1, dtype=np.int64)
    for row, user in enumerate(split.test_users.tolist()):
        if row and row % 1000 == 0:
            progress(f"  {row:,} of {split.n_test:,} users answered")
        positions = events.get(int(user), [])
        news = [
            (str(log.item_ids[log.item[p]]), kinds[log.kind[p]], int(log.ts_ms[p]))
            for p in positions
        ]
        found = model.recommend(model.user_history(None, news), now_ms, k)
        codes = [to_new[item] for item, _ in found if item in to_new][:k]
        recommended[row, : len(codes)] = codes
    return evaluate(recommended, split.truth)


@dataclass
class GateResult:
    """Whether a model may be published, and why (or why not)."""

    passed: bool
    metric: str
    candidate: float
    popularity: float
    production_version: str | None = None
    production: dict[str, float] | None = None
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The manifest's `gate` entry."""
        return {
            "passed": self.passed,
            "metric": self.metric,
            "candidate": self.candidate,
            "popularity": self.popularity,
            "production_version": self.production_version,
            "production_metrics": self.production,
            "reasons": self.reasons,
        }


def decide(
    metric: str,
    candidate: dict[str, float],
    popularity: dict[str, float],
    production: dict[str, float] | None,
    production_version: str | None,
    no_production_reason: str = "no model is in production yet",
) -> GateResult:
    """Pass only a model strictly better than popularity and than production, if any."""
    result = GateResult(
        passed=True,
        metric=metric,
        candidate=candidate[metric],
        popularity=popularity[metric],
        production_version=production_version,
        production=production,
    )
    if candidate[metric] <= popularity[metric]:
        result.passed = False
        result.reasons.append(
            f"{metric} {candidate[metric]:.4f} does not beat popularity-count's "
            f"{popularity[metric]:.4f}"
        )
    if production is not None and candidate[metric] <= production[metric]:
        result.passed = False
        result.reasons.append(
            f"{metric} {candidate[metric]:.4f} does not beat production {production_version}'s "
            f"{production[metric]:.4f} on the same holdout"
        )
    if result.passed:
        result.reasons.append(
            f"{metric} {candidate[metric]:.4f} beats popularity-count ({popularity[metric]:.4f})"
            + (
                f" and production {production_version} ({production[metric]:.4f})"
                if production is not None
                else f"; {no_production_reason}"
            )
        )
    return result
