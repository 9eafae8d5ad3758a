"""The model versions under `models/`: what `recs models` lists and the pipeline's gate reads.

A version is complete once its `manifest.json` is written. Its state is `production` when
`models/production.json` names it, else `approved` or `candidate`, as its gate decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.lake import Lake
from training.artifacts import SERVED
from training.registry import Manifest, production_version, version_names
from training.tuning import SELECT_ON


@dataclass(frozen=True)
class Version:
    """One trained version, as its manifest describes it."""

    version: str
    state: str
    backend: str
    chosen: str
    #: The served model's NDCG@10 on its holdout (a Personalize version's: on Personalize's
    #: holdout), and popularity's beside it on ours.
    ndcg10: float | None
    popularity_ndcg10: float | None
    reasons: tuple[str, ...]
    manifest: dict[str, Any]
    #: Replaying each user's own items, then popular, on the same holdout: the gate's bar
    #: where the version lets seen items come back (None where it does not).
    own_history_ndcg10: float | None = None


def describe(lake: Lake, version: str, production: str | None) -> Version:
    """One version's summary."""
    found = Manifest.load(lake, version)
    metrics = found.metrics
    # A Personalize version serves Personalize's answers: its figure is Personalize's own.
    served = metrics.get("personalize" if found.backend == "personalize" else SERVED) or {}
    popularity = metrics.get("popularity-count") or {}
    return Version(
        version=version,
        state="production" if version == production else found.status,
        backend=found.backend,
        chosen=found.recipe,
        ndcg10=served.get(SELECT_ON),
        popularity_ndcg10=popularity.get(SELECT_ON),
        reasons=tuple(found.reasons),
        manifest=dict(found.raw),
        own_history_ndcg10=found.gate.get("own_history"),
    )


def versions(lake: Lake) -> list[Version]:
    """Every complete version, oldest first."""
    live = production_version(lake)
    return [describe(lake, name, live) for name in version_names(lake)]
