"""`recs evaluate`: score a published or trained version on today's curated data.

The holdout is drawn as in training. When there are held-out events newer than the version's
own data, only those count (the model never saw them); otherwise the result says that the
holdout overlaps its training data and flatters it. Popularity is always scored beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ingestion.contract import epoch_ms, format_ts
from ingestion.lake import Lake
from training.artifacts import MODELS
from training.data import DEFAULT_WEIGHTS, load_events, time_split
from training.errors import ModelNotFound
from training.gate import load_model, newer_split, production_version, score_other
from training.metrics import evaluate
from training.pipeline import K
from training.recipes import Popularity


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


def evaluate_version(lake: Lake, version: str | None = None, *, seed: int = 42) -> Evaluation:
    """Score a version (default: production) and record the result in its manifest."""
    version = version or production_version(lake)
    if version is None:
        raise ModelNotFound("no version given and none in production; run `recs publish`")
    model, items, manifest = load_model(lake, version)
    weights = manifest.get("event_weights", DEFAULT_WEIGHTS)
    log = load_events(lake)
    split = time_split(log, seed=seed)
    rows = log.matrix(weights, mask=split.train, half_life_days=manifest.get("half_life_days"))
    rows = rows[split.test_users]
    last = datetime.fromisoformat(manifest["data"]["last_event"])
    newer = newer_split(log, split, epoch_ms(last))
    target = newer or split
    popular = Popularity().fit(log.matrix(weights, mask=split.train))
    result = Evaluation(
        version=version,
        metrics=score_other(model, items, log, rows, target, K),
        popularity=evaluate(popular.recommend(None, rows, K)[0], target.truth),
        unseen_only=newer is not None,
        events=len(log),
    )
    manifest.setdefault("evaluations", []).append(result.to_json())
    lake.write_bytes(f"{MODELS}/{version}/manifest.json", json.dumps(manifest, indent=2).encode())
    return result
