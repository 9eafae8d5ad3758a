"""The storefront and the ops page in a real browser: headless Chromium, driven by Playwright.

The tour (`orchestration.ui.tour`, also what `make screenshots` runs) picks a shopper, opens
a product and adds it to the cart; the recommended row must change and say `realtime`. The
ops page must show the production version and a pipeline run, and no page may log an error.

It runs in `make test-all`, not `make test` (marker `browser`): it needs Debian's Chromium, a
system package `make browser` installs with apt (Playwright's own browser download cannot be
reached from here), and `make test` must pass on a fresh machine without installing system
packages. The test itself takes about ten seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common.lake import LocalLake
from orchestration.runner import run_pipeline
from orchestration.settings import PipelineSettings
from orchestration.ui.server import UiApp
from orchestration.ui.tour import chromium, tour
from serving.asgi import LambdaASGI
from tests.etl_helpers import NOW, curated_training_shop
from tests.serving_helpers import PublishedShop, handler_for, services_for, serving_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> PublishedShop:
    """A shop trained and published by a pipeline run, so the ops page has one to show."""
    root = tmp_path_factory.mktemp("shop")
    lake = LocalLake(root / "lake")
    curated_training_shop(lake)
    settings = PipelineSettings(
        lake=str(root / "lake"), store=str(root / "store.sqlite3"), event_log=root / "log.sqlite3"
    )
    record = run_pipeline(lake, settings, now=NOW)
    assert record.version is not None
    return PublishedShop(root / "lake", root / "store.sqlite3", record.version)


@pytest.fixture
def base(shop: PublishedShop, tmp_path: Path) -> Iterator[str]:
    services = services_for(shop, tmp_path)
    app = UiApp(LambdaASGI(handler_for(services)), LocalLake(shop.lake), frozenset())
    try:
        with serving_app(app) as url:
            yield url
    finally:
        services.sink.close()


def test_a_shoppers_cart_changes_their_recommendations_at_once(
    base: str, shop: PublishedShop, tmp_path: Path
) -> None:
    if chromium() is None:
        pytest.fail("no Chromium: `make browser` installs Debian's chromium (make test-all does)")
    seen = tour(base, tmp_path / "shots")
    assert seen.home_source == "batch"  # a known shopper, before any event
    assert seen.product
    assert seen.after_cart_source == "realtime"
    assert seen.recommended_after != seen.recommended_before
    assert seen.model_version == shop.version
    assert seen.runs_shown >= 1
    assert seen.errors == []
    assert [p.name for p in seen.shots] == ["store.png", "product.png", "ops.png"]
    assert all(p.stat().st_size > 10_000 for p in seen.shots)
