"""The promotion gate: a new model goes live only if it beats, on the same holdout, both the
model in production and popularity.

The production model is whatever `recs publish` last published (`models/production.json`,
written by serving). It is loaded from its own artifacts, as serving loads it, and scored on
the new model's holdout: each user is answered from their history before the cut, items are
matched by id, so both models answer the same question.

A decision needs evidence. Every comparison is paired, user by user, and carries a 95%
bootstrap interval of the difference. Production is judged on held-out events it never saw;
when fewer than `MIN_USERS` users have such events, that sample is too thin to judge on, and
the gate says so and compares on the candidate's whole holdout instead, where production has
seen the events (which can only favour production).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from common.contract import EVENT_TYPES
from common.progress import Progress, quiet
from training.data import Interactions, Split
from training.metrics import MIN_USERS, Paired, evaluate
from training.published import PublishedModel


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
    """Metrics of a published version on this split (see `rank_published`)."""
    return evaluate(rank_published(model, log, split, k, progress), split.truth)


def rank_published(
    model: PublishedModel,
    log: Interactions,
    split: Split,
    k: int,
    progress: Progress = quiet,
) -> npt.NDArray[np.int64]:
    """A published version's top k for each test user of this split, answered from their
    history before the cut alone (the version's own history may reach past it), in this
    log's item codes (items matched by id; -1 pads)."""
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
    return recommended


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
    #: The paired comparisons behind the decision: "popularity", "own history", "production".
    evidence: dict[str, Paired] = field(default_factory=dict)
    #: The metric of replaying each user's own history, then popular (where repeats are on).
    own_history: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The manifest's `gate` entry."""
        return {
            "passed": self.passed,
            "metric": self.metric,
            "candidate": self.candidate,
            "popularity": self.popularity,
            "own_history": self.own_history,
            "production_version": self.production_version,
            "production_metrics": self.production,
            "reasons": self.reasons,
            "evidence": {name: found.to_json() for name, found in self.evidence.items()},
        }


def _versus_production(
    result: GateResult,
    candidate: float,
    production: float,
    versus: Paired | None,
    thin_stays: bool,
    backed: str,
) -> None:
    """The verdict against production, on the candidate's and production's metric: kept if
    not better, or better only on too thin a sample; said either way."""
    metric, live = result.metric, result.production_version
    if candidate <= production:
        result.passed = False
        result.reasons.append(
            f"{metric} {candidate:.4f} does not beat production {live}'s {production:.4f} on "
            f"the same holdout{backed}"
        )
    elif thin_stays:
        result.passed = False
        assert versus is not None
        result.reasons.append(
            f"{metric} {candidate:.4f} beats production {live}'s {production:.4f}{backed}, but "
            f"{versus.users:,} users are too thin a sample to judge on (at least {MIN_USERS} "
            "are needed), where only a win beyond the 95% interval counts: production stays"
        )
    elif not result.passed:
        # Kept for another reason: what production's comparison found is said all the same.
        result.reasons.append(
            f"{metric} {candidate:.4f} beats production {live}'s {production:.4f}{backed}"
        )


#: What the gate says of a night with nothing in production: true when it was decided, stale
#: once this very version (or a later one) is live, so the ops page leaves it out then.
NO_PRODUCTION: Final = "no model is in production yet"


def decide(
    metric: str,
    candidate: dict[str, float],
    popularity: dict[str, float],
    production: dict[str, float] | None,
    production_version: str | None,
    no_production_reason: str = NO_PRODUCTION,
    evidence: Mapping[str, Paired] | None = None,
    notes: tuple[str, ...] = (),
    own_history: dict[str, float] | None = None,
) -> GateResult:
    """Pass only a model strictly better than popularity, than production, if any, and, where
    it lets users' own items come back (`own_history` given), than replaying their own
    history before the popular items.

    `evidence` holds the paired comparisons the metrics come from, said beside each verdict.
    Against production on a thin sample (under `MIN_USERS` users), a point estimate is noise:
    the candidate must win beyond the 95% interval, or production stays. `notes` come first
    among the reasons (what the decision could not rest on, and why)."""
    evidence = dict(evidence or {})
    result = GateResult(
        passed=True,
        metric=metric,
        candidate=candidate[metric],
        popularity=popularity[metric],
        production_version=production_version,
        production=production,
        reasons=list(notes),
        evidence=evidence,
    )

    def backed(name: str) -> str:
        return f" ({evidence[name]})" if name in evidence else ""

    if candidate[metric] <= popularity[metric]:
        result.passed = False
        result.reasons.append(
            f"{metric} {candidate[metric]:.4f} does not beat popularity-count's "
            f"{popularity[metric]:.4f}{backed('popularity')}"
        )
    if own_history is not None:
        result.own_history = own_history[metric]
        if candidate[metric] <= own_history[metric]:
            result.passed = False
            result.reasons.append(
                f"{metric} {candidate[metric]:.4f} does not beat own history, then popular "
                f"({own_history[metric]:.4f}){backed('own history')}"
            )
    versus = evidence.get("production")
    # On a thin sample, production stays unless the candidate wins beyond the interval.
    thin_stays = versus is not None and versus.thin and versus.low <= 0
    if production is not None:
        _versus_production(result, candidate[metric], production[metric], versus, thin_stays,
                           backed("production"))  # fmt: skip
    if result.passed:
        result.reasons.append(
            f"{metric} {candidate[metric]:.4f} beats popularity-count ({popularity[metric]:.4f})"
            + backed("popularity")
            + (
                f", own history, then popular ({own_history[metric]:.4f})" + backed("own history")
                if own_history is not None
                else ""
            )
            + (
                f" and production {production_version} ({production[metric]:.4f})"
                + backed("production")
                if production is not None
                else f"; {no_production_reason}"
            )
        )
    # Thin evidence is said whichever way the decision went (unless production stayed for it).
    thin = min((found.users for found in evidence.values() if found.thin), default=None)
    if thin is not None and not (production is not None and thin_stays):
        result.reasons.append(
            f"only {thin:,} held-out users could be scored, a thin sample (at least "
            f"{MIN_USERS} are needed to judge on): mind the intervals"
        )
    return result
