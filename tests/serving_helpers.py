"""A trained and published shop, and the API over it, for the serving suites."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from common.lake import LocalLake
from ingestion.sinks import EventLog, LocalSink
from serving.app import Handler, build_app, make_handler
from serving.asgi import LambdaASGI
from serving.idempotency import SQLitePersistenceLayer
from serving.publish import publish
from serving.recommend import LiveModel, Recommender
from serving.services import Services
from serving.store import SQLiteStore
from tests.etl_helpers import NOW, curated_training_shop
from training.pipeline import train


@dataclass(frozen=True)
class PublishedShop:
    """A lake with a trained version, and the store it is published in."""

    lake: Path
    store: Path
    version: str


def published_shop(root: Path) -> PublishedShop:
    """Generate, curate, train and publish a 20,000-event shop under `root`."""
    lake = LocalLake(root / "lake")
    curated_training_shop(lake)
    report = train(lake, now=NOW)
    store = SQLiteStore(root / "store.sqlite3")
    publish(lake, store, report.version, force=True)
    return PublishedShop(root / "lake", root / "store.sqlite3", report.version)


def services_for(
    shop: PublishedShop,
    folder: Path,
    *,
    api_keys: frozenset[str] = frozenset(),
    cors_origins: tuple[str, ...] = (),
) -> Services:
    """The API's services over a published shop, with a fresh event log and key records."""
    lake = LocalLake(shop.lake)
    store = SQLiteStore(shop.store)
    log = EventLog(folder / "event-log.sqlite3")
    return Services(
        recommender=Recommender(
            LiveModel(lake, store), store, log, candidate=LiveModel(lake, store, arm="candidate")
        ),
        sink=LocalSink(log, lake),
        idempotency=SQLitePersistenceLayer(folder / "idempotency.sqlite3"),
        api_keys=api_keys,
        cors_origins=cors_origins,
    )


def handler_for(services: Services) -> Handler:
    """The Lambda handler over these services."""
    return make_handler(build_app(services), services)


@contextmanager
def serving(services: Services) -> Iterator[str]:
    """The API over real HTTP on a free loopback port; yields its base URL."""
    with serving_app(LambdaASGI(handler_for(services), cors_origins=services.cors_origins)) as base:
        yield base


@contextmanager
def serving_app(app: Any) -> Iterator[str]:
    """An ASGI app over real HTTP on a free loopback port; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        threading.Event().wait(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def get_json(base: str, path: str, **params: str) -> tuple[int, dict[str, Any]]:
    """GET `path` with `params` over real HTTP: the status and the JSON body, errors too."""
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
