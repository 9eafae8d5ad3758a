"""The model versions under `models/`: what `recs models` lists and the pipeline's gate reads.

A version is complete once its `manifest.json` is written. Its state is `production` when
`models/production.json` names it, else `approved` or `candidate`, as its gate decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.lake import Lake, damaged, read_json
from common.layout import MODELS
from training.artifacts import SERVED
from training.errors import ModelNotFound
from training.gate import production_version
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


def version_name(now: datetime) -> str:
    """A version's name: its training clock, to the second."""
    return f"{now:%Y%m%dT%H%M%SZ}"


def manifest(lake: Lake, version: str) -> dict[str, Any]:
    """A version's manifest, or `ModelNotFound` saying what to run."""
    key = f"{MODELS}/{version}/manifest.json"
    try:
        found = read_json(lake, key)
    except FileNotFoundError:
        raise ModelNotFound(
            f"no model version {version} under {MODELS}/ (`recs models list` shows them)"
        ) from None
    if not isinstance(found, dict):
        raise damaged(lake, key, "not a JSON object")
    return found


def describe(lake: Lake, version: str, production: str | None) -> Version:
    """One version's summary."""
    found = manifest(lake, version)
    metrics = found.get("metrics") or {}
    backend = str(found.get("backend", "local"))
    # A Personalize version serves Personalize's answers: its figure is Personalize's own.
    served = metrics.get("personalize" if backend == "personalize" else SERVED) or {}
    popularity = metrics.get("popularity-count") or {}
    status = str(found.get("status", "candidate"))
    return Version(
        version=version,
        state="production" if version == production else status,
        backend=backend,
        chosen=str(found.get("chosen_label") or found.get("chosen") or found.get("recipe")),
        ndcg10=served.get(SELECT_ON),
        popularity_ndcg10=popularity.get(SELECT_ON),
        reasons=tuple((found.get("gate") or {}).get("reasons", [])),
        manifest=found,
        own_history_ndcg10=(found.get("gate") or {}).get("own_history"),
    )


def versions(lake: Lake) -> list[Version]:
    """Every complete version, oldest first."""
    names = sorted(
        key.split("/")[1] for key in lake.list(f"{MODELS}/") if key.endswith("/manifest.json")
    )
    live = production_version(lake)
    return [describe(lake, name, live) for name in names]
