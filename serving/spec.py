"""The API's OpenAPI 3 spec, generated from the app; `serving/openapi.yaml` is its committed copy.

A test fails when the two differ: run `make openapi` after changing a route.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Final

import yaml
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from common.contract import Event
from common.lake import LocalLake
from ingestion.sinks import EventLog, LocalSink
from serving.app import build_app
from serving.idempotency import SQLitePersistenceLayer
from serving.recommend import LiveModel, Recommender
from serving.services import Services
from serving.shapes import API_VERSION, DESCRIPTION, SECURITY_SCHEMES, RankingRequest
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


def openapi_json(app: APIGatewayHttpResolver) -> str:
    """The API's OpenAPI 3 document, with the event contract's schema under components."""
    spec: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title="recs API",
            version=API_VERSION,
            description=DESCRIPTION,
            security_schemes=SECURITY_SCHEMES,
            security=[{}, {"apiKey": []}],
        )
    )
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Event"] = Event.model_json_schema(by_alias=True, mode="validation")
    schemas["RankingRequest"] = RankingRequest.model_json_schema(mode="validation")
    # Powertools documents its own 422 for request validation; this API answers those with
    # a 400 and the README's {"error"} body instead, so its 422 entries would be false.
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
    for methods in spec["paths"].values():
        for operation in methods.values():
            responses = operation.get("responses", {})
            if "HTTPValidationError" in json.dumps(responses.get("422", {})):
                del responses["422"]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            # The events and ranking bodies: our schemas, not the Python type they arrive as.
            if body and "oneOf" in body["schema"]:
                body["schema"] = {"oneOf": body["schema"]["oneOf"]}
            elif body and "$ref" in body["schema"]:
                body["schema"] = {"$ref": body["schema"]["$ref"]}
    return json.dumps(spec, indent=2, sort_keys=True)
