"""A model version the API cannot load never takes the API down.

Before: with one `.npz` of a version removed and that version published with --force, or with
a store naming a version the lake lacks, every route (`/v1/health` too) answered a plain-text
500, and the server tried the whole load again on every request.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from common.lake import LocalLake
from serving.idempotency import LocalRequestContext
from serving.publish import publish
from serving.recommend import LiveModel
from serving.store import SQLiteStore
from tests.conftest import load_event
from tests.etl_helpers import NOW
from tests.serving_helpers import PublishedShop, handler_for, published_shop, services_for
from training.errors import ModelUnreadable
from training.pipeline import TrainOptions, train

MISSING = "similar-items.npz"


class Clock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[PublishedShop, str]:
    """A published shop, and a second trained version with one of its files removed."""
    root = tmp_path_factory.mktemp("unloadable")
    shop = published_shop(root)
    lake = LocalLake(shop.lake)
    broken = train(lake, TrainOptions(seed=7), now=NOW + timedelta(minutes=1)).version
    (shop.lake / "models" / broken / MISSING).rename(root / MISSING)
    return shop, broken


def _restore(shop: PublishedShop, version: str) -> None:
    (shop.lake.parent / MISSING).rename(shop.lake / "models" / version / MISSING)


def _ask(handler: Any, name: str, query: str = "") -> tuple[int, dict[str, Any]]:
    event = load_event(name)
    if query:
        event["rawQueryString"] = query
        event["queryStringParameters"] = dict(p.split("=") for p in query.split("&"))
    response = handler(event, LocalRequestContext())
    assert response["headers"]["Content-Type"] == "application/json"
    return int(response["statusCode"]), json.loads(response["body"])


def test_publish_loads_the_version_as_the_api_will_and_refuses_one_it_cannot(
    shop: tuple[PublishedShop, str],
) -> None:
    published, broken = shop
    lake = LocalLake(published.lake)
    store = SQLiteStore(published.store)
    with pytest.raises(ModelUnreadable, match=f"not published.*{broken}.*{MISSING}"):
        publish(lake, store, broken, force=True)
    assert store.active_version() == published.version
    assert json.loads(lake.read_bytes("models/production.json"))["version"] == published.version


def test_a_version_that_cannot_be_loaded_leaves_the_loaded_one_answering(
    shop: tuple[PublishedShop, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    published, broken = shop
    lake = LocalLake(published.lake)
    store = SQLiteStore(published.store)
    clock = Clock()
    services = services_for(published, tmp_path)
    live = LiveModel(lake, store, check_seconds=30.0, clock=clock)
    services.recommender.live = live
    handler = handler_for(services)
    try:
        assert _ask(handler, "apigw_health.json")[1]["modelVersion"] == published.version
        store.activate(broken)  # what `recs publish --force` did before it loaded first
        clock.now += 30
        status, health = _ask(handler, "apigw_health.json")
        assert status == 200
        assert health["modelVersion"] == published.version
        assert health["failure"]["publishedVersion"] == broken
        assert MISSING in health["failure"]["error"]
        assert health["failure"]["attempts"] == 1
        status, answer = _ask(handler, "apigw_personalized.json")
        assert (status, answer["modelVersion"]) == (200, published.version)
        assert any(
            r.levelname == "ERROR" and broken in r.getMessage() and "serving " in r.getMessage()
            for r in caplog.records
        )

        # Not again on every request: after 1 s, then 2 s more, then 4 s more.
        for step, attempts in [(0.5, 1), (0.5, 2), (1.0, 2), (1.0, 3), (3.5, 3), (0.5, 4)]:
            clock.now += step
            for _ in range(3):
                _ask(handler, "apigw_personalized.json")
            assert _ask(handler, "apigw_health.json")[1]["failure"]["attempts"] == attempts

        _restore(published, broken)
        clock.now += 8
        status, health = _ask(handler, "apigw_health.json")
        assert (status, health["modelVersion"]) == (200, broken)
        assert "failure" not in health
    finally:
        store.activate(published.version)
        services.sink.close()
        restored = published.lake / "models" / broken / MISSING
        if restored.exists():  # as the other tests expect it: missing
            restored.rename(published.lake.parent / MISSING)


def test_a_store_naming_a_version_the_lake_lacks_is_a_json_503_that_says_so(
    shop: tuple[PublishedShop, str], tmp_path: Path
) -> None:
    published, _ = shop
    lake = LocalLake(published.lake)
    store = SQLiteStore(tmp_path / "other-store.sqlite3")
    store.activate("20990101T000000Z")
    services = services_for(published, tmp_path)
    services.recommender.live = LiveModel(lake, store, clock=Clock())
    handler = handler_for(services)
    try:
        status, health = _ask(handler, "apigw_health.json")
        assert status == 503
        assert health["modelVersion"] is None
        assert health["failure"]["publishedVersion"] == "20990101T000000Z"
        status, answer = _ask(handler, "apigw_related.json")
        assert status == 503
        assert answer["error"].startswith(
            "Model version 20990101T000000Z is published but cannot be loaded: model version "
            "20990101T000000Z lacks "
        )
    finally:
        services.sink.close()
