"""`recs evaluate`: score a published or trained version on today's curated data.

The holdout is cut on global time, as in training. Only held-out events newer than the
version's own data count when there are any (the model never saw them); otherwise the result
says that the holdout overlaps its training data and flatters it. Each user is answered from
their history before the cut, through the serving path. Popularity is always scored beside.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.contract import format_ts
from common.lake import Lake
from common.progress import Progress, quiet
from training.blend import POPULARITY
from training.data import DEFAULT_WEIGHTS, global_split, load_events
from training.errors import ModelNotFound
from training.gate import newer_split, score_published
from training.metrics import EVAL_USERS, K, evaluate
from training.published import PublishedModel
from training.registry import Manifest, production_version
from training.scoring import rank_split


@dataclass
class Evaluation:
    """A version's metrics on the current data, beside popularity's."""

    version: str
    metrics: dict[str, float]
    popularity: dict[str, float]
    unseen_only: bool
    events: int

    def to_json(self) -> dict[str, Any]:
        """The entry appended to the manifest's `evaluations`."""
        return {
            "at": format_ts(datetime.now(UTC)),
            "events": self.events,
            "unseen_only": self.unseen_only,
            "metrics": self.metrics,
            "popularity-count": self.popularity,
        }


def evaluate_version(
    lake: Lake,
    version: str | None = None,
    *,
    seed: int = 42,
    progress: Progress = quiet,
) -> Evaluation:
    """Score a version (default: production) and record the result in its manifest."""
    version = version or production_version(lake)
    if version is None:
        raise ModelNotFound("no version given and none in production; run `recs publish`")
    manifest = Manifest.load(lake, version)
    progress(f"loading version {version} and the curated interactions")
    model = PublishedModel.load(lake, version)
    weights = manifest.event_weights or DEFAULT_WEIGHTS
    log = load_events(lake)
    split = global_split(log, max_users=EVAL_USERS, seed=seed)
    newer = newer_split(log, split, model.last_event_ms)
    target = newer or split
    cut = datetime.fromtimestamp((split.cut_ms or 0) / 1000, UTC)
    progress(
        f"holdout: {len(log):,} events cut at {cut:%Y-%m-%d %H:%M}, {target.n_test:,} users "
        f"scored, each answered by version {version} as the API answers"
    )
    progress("scoring popularity-count beside it")
    history = log.history(weights, split.train, None)
    best = rank_split(POPULARITY, None, log, split, history, history.weight_matrix(log.n_items), K)
    result = Evaluation(
        version=version,
        metrics=score_published(model, log, target, K, progress=progress),
        popularity=evaluate(best, target.truth),
        unseen_only=newer is not None,
        events=len(log),
    )
    manifest.save(lake, evaluations=[*manifest.raw.get("evaluations", []), result.to_json()])
    return result
