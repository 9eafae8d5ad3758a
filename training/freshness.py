"""Whether a night has anything new to train on.

The curated zone is what training reads, and the ETL's bookmark says exactly what it holds:
the live interaction files of every date with their row counts, and the catalog dump merged
into items and users. Their fingerprint, with the training window, goes into each version's
manifest (`data.source`). When tonight's fingerprint is production's, training would only
fit the same data again: `recs train` and the pipeline say so and stop, unless forced.
"""

from __future__ import annotations

import hashlib
import json

from common.lake import Lake
from etl import state
from training.errors import ModelNotFound
from training.registry import Manifest, production_version


def data_fingerprint(lake: Lake, window_days: int | None) -> str:
    """What the curated zone holds for training, as the ETL committed it, and the window."""
    bookmark = state.load(lake)
    described = {
        "interactions": bookmark.interactions,
        "catalog_dump": bookmark.catalog_dump,
        "window_days": window_days,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def nothing_new(lake: Lake, window_days: int | None, force_with: str) -> str | None:
    """Why there is nothing to train tonight (production was trained on exactly this data),
    naming `force_with`, the flag that trains anyway; None when there is something new, or
    no production version whose data is known."""
    version = production_version(lake)
    if version is None:
        return None
    try:
        manifest = Manifest.load(lake, version)
    except ModelNotFound:
        return None
    trained_on = (manifest.raw.get("data") or {}).get("source")
    if trained_on is None or trained_on != data_fingerprint(lake, window_days):
        return None
    return (
        f"nothing new since production's version {version}: the curated zone holds the same "
        "interaction files and catalog it was trained on, so training would fit the same "
        f"data again; {force_with} trains anyway"
    )
