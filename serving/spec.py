"""The API's OpenAPI 3 spec, generated from the app; `serving/openapi.yaml` is its committed copy.

A test fails when the two differ: run `make openapi` after changing a route.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Final

import yaml

from ingestion.lake import LocalLake
from ingestion.sinks import EventLog, LocalSink
from serving.app import Services, build_app, openapi_json
from serving.idempotency import SQLitePersistenceLayer
from serving.recommend import LiveModel, Recommender
from serving.store import SQLiteStore

SPEC_PATH: Final = Path(__file__).with_name("openapi.yaml")


def openapi_spec() -> dict[str, Any]:
    """The spec as a mapping. The routes do not depend on where the services keep their data,
    so it is built over empty local ones in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="recs-spec-") as folder:
        root = Path(folder)
        lake, store = LocalLake(root / "lake"), SQLiteStore(root / "store")
        log = EventLog(root / "events")
        sink = LocalSink(log, lake)
        services = Services(
            recommender=Recommender(LiveModel(lake, store), store, log),
            sink=sink,
            idempotency=SQLitePersistenceLayer(root / "idempotency"),
        )
        try:
            spec: dict[str, Any] = json.loads(openapi_json(build_app(services)))
        finally:
            sink.close()
    return spec


def openapi_yaml() -> str:
    """The spec as YAML, keys sorted, as committed."""
    header = "# Generated from serving/app.py by `make openapi`; do not edit by hand.\n"
    return header + yaml.safe_dump(openapi_spec(), sort_keys=True, allow_unicode=True, width=100)
