"""The model registry: manifests read one way, and the production pointer kept in one place."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from common.errors import DamagedObject
from common.lake import LocalLake
from common.layout import PRODUCTION
from training.errors import ModelNotFound
from training.registry import (
    Manifest,
    ProductionPointer,
    is_complete,
    manifest_key,
    version_name,
    version_names,
)


def test_a_manifest_is_read_typed_and_saved_with_changes(local_lake: LocalLake) -> None:
    with pytest.raises(ModelNotFound, match="no model version v1 under models/"):
        Manifest.load(local_lake, "v1")
    written = {
        "status": "approved",
        "chosen": "item-knn",
        "chosen_label": "item-knn (alpha 0.5)",
        "artifacts": ["ids.npz"],
        "gate": {"reasons": ["beats popularity"]},
        "metrics": {"served": {"ndcg": 0.2}},
    }
    local_lake.write_bytes(manifest_key("v1"), json.dumps(written).encode())
    found = Manifest.load(local_lake, "v1")
    assert (found.approved, found.backend, found.chosen, found.recipe) == (
        True, "local", "item-knn", "item-knn (alpha 0.5)",
    )  # fmt: skip
    assert found.reasons == ["beats popularity"]
    assert found.metrics["served"] == {"ndcg": 0.2}
    saved = found.save(local_lake, status="candidate")
    assert Manifest.load(local_lake, "v1").status == saved.status == "candidate"
    assert Manifest.load(local_lake, "v1").artifacts == ["ids.npz"]  # the rest is kept
    local_lake.write_bytes(manifest_key("v2"), b"[1, 2]")
    with pytest.raises(DamagedObject):
        Manifest.load(local_lake, "v2")
    assert Manifest("v3", {}).recipe == "history and trending"
    assert version_names(local_lake) == ["v1", "v2"]
    assert is_complete(local_lake, "v1")
    assert not is_complete(local_lake, "v9")
    assert version_name(datetime(2026, 11, 2, 2, 0, 5, tzinfo=UTC)) == "20261102T020005Z"


def test_the_pointer_keeps_the_live_version_and_the_one_before(local_lake: LocalLake) -> None:
    pointer = ProductionPointer(local_lake)
    assert (pointer.version(), pointer.history()) == (None, [])
    for version in ("v1", "v2", "v3"):
        kept, _dropped = pointer.next_history(version, keep=2)
        pointer.flip(version, kept, forced=version == "v3", campaign=None)
    assert pointer.version() == "v3"
    assert pointer.history() == ["v2", "v3"]
    assert pointer.next_history("v2", keep=2) == (["v3", "v2"], [])  # a rollback drops none
    assert pointer.next_history("v4", keep=2) == (["v3", "v4"], ["v2"])
    read = pointer.read()
    assert read is not None
    assert read.forced
    # A pointer from before `history` was kept still names what the store holds.
    local_lake.write_bytes(PRODUCTION, json.dumps({"version": "v0"}).encode())
    assert pointer.history() == ["v0"]
    local_lake.write_bytes(PRODUCTION, json.dumps({"versions": "v0"}).encode())
    with pytest.raises(DamagedObject, match="names no version"):
        pointer.version()
