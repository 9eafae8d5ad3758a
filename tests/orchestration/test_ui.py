"""The storefront and ops pages `recs serve` shows beside the API, over real HTTP."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.lake import LocalLake
from etl.sql import connect
from orchestration.runner import start_run
from orchestration.settings import PipelineSettings
from orchestration.ui.server import UiApp
from serving.asgi import LambdaASGI
from tests.serving_helpers import (
    PublishedShop,
    handler_for,
    published_shop,
    services_for,
    serving_app,
)

KEY = "s3cret-key-for-the-ui-test"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> PublishedShop:
    return published_shop(tmp_path_factory.mktemp("shop"))


def _served(shop: PublishedShop, folder: Path, keys: frozenset[str]) -> Iterator[str]:
    services = services_for(shop, folder, api_keys=keys)
    app = UiApp(LambdaASGI(handler_for(services)), LocalLake(shop.lake), keys)
    try:
        with serving_app(app) as base:
            yield base
    finally:
        services.sink.close()


@pytest.fixture
def base(shop: PublishedShop, tmp_path: Path) -> Iterator[str]:
    yield from _served(shop, tmp_path, frozenset())


@pytest.fixture
def keyed(shop: PublishedShop, tmp_path: Path) -> Iterator[str]:
    yield from _served(shop, tmp_path, frozenset({KEY}))


def _get(url: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _json(url: str, **headers: str) -> tuple[int, Any]:
    status, _, body = _get(url, **headers)
    return status, json.loads(body)


@pytest.mark.parametrize("path", ["/", "/ops", "/ui/static/store.js"])
def test_the_pages_answer_get_and_head_only(base: str, path: str) -> None:
    """Before: / and /ops answered 200 to PUT, DELETE, PATCH, TRACE and OPTIONS."""
    for method in ("PUT", "DELETE", "PATCH", "TRACE", "OPTIONS", "POST"):
        status, headers, body = _get(base + path, method)
        assert (status, headers["allow"]) == (405, "GET, HEAD"), method
        assert json.loads(body) == {"error": f"{path} answers GET only"}
    status, headers, body = _get(base + path, "HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["content-length"]) > 0


@pytest.mark.parametrize(
    "path", ["/ui/static/%00", "/ui/static/..%2fserver.py", "/ui/static/a%00.js", "/ui/static/"]
)
def test_a_static_name_that_is_no_file_of_the_folder_is_a_json_404(base: str, path: str) -> None:
    """Before: /ui/static/%00 made the path check raise, and the answer a plain-text 500."""
    status, body = _json(base + path)
    assert status == 404
    assert body["error"].startswith("no page at /ui/static/")


def test_the_pages_are_static_with_a_strict_policy(base: str) -> None:
    for path in ("/", "/ops"):
        status, headers, body = _get(base + path)
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert "script-src 'self'" in headers["content-security-policy"]
        assert b"<script>" not in body  # no inline script: the policy would refuse it
    assert b"demo" in _get(base + "/")[2]
    status, headers, _ = _get(base + "/ui/static/store.js")
    assert (status, headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    assert _get(base + "/ui/static/../server.py")[0] == 404  # nothing outside static/
    assert _get(base + "/ui/static/%2e%2e/server.py")[0] == 404
    assert _json(base + "/ui/nothing") == (
        404,
        {"error": "no /ui/nothing: /ui/ answers catalog, items, ops"},
    )


def test_the_catalog_has_names_and_shoppers(base: str) -> None:
    status, catalog = _json(base + "/ui/catalog")
    assert status == 200
    assert catalog["users"]
    shelf = catalog["categories"][0]
    assert shelf["name"]
    assert all(item["title"] and item["title"] != item["id"] for item in shelf["items"])
    ids = [item["id"] for item in shelf["items"][:3]] + ["no-such-item"]
    status, found = _json(base + "/ui/items?ids=" + ",".join(ids))
    assert status == 200
    assert sorted(found["items"]) == sorted(ids[:3])


def test_the_new_in_shelf_lists_items_nobody_touched_and_relates_them(
    base: str, shop: PublishedShop
) -> None:
    """Issue 28, part 2: the store shows the catalog's items without events, and each one's
    product page has related items, from its attributes."""
    _, catalog = _json(base + "/ui/catalog")
    new = [item["id"] for item in catalog["new"]]
    assert new
    touched = {
        row[0]
        for row in connect(LocalLake(shop.lake))
        .execute("SELECT DISTINCT item_id FROM interactions")
        .fetchall()
    }
    assert not set(new) & touched
    status, related = _json(base + f"/v1/recommendations/related?itemId={new[0]}&k=3")
    assert status == 200
    assert related["source"] == "batch"
    assert len(related["related"]) == 3


def test_ops_shows_the_model_the_runs_the_lake_and_the_api(base: str, shop: PublishedShop) -> None:
    lake = LocalLake(shop.lake)
    run = start_run(lake, PipelineSettings(lake=str(shop.lake)), datetime(2026, 11, 2, tzinfo=UTC))
    for _ in range(3):
        assert _get(base + "/v1/recommendations/personalized?userId=U1&k=3")[0] == 200
    assert _get(base + "/v1/recommendations/personalized?userId=U1&k=0")[0] == 400
    status, ops = _json(base + "/ui/ops")
    assert status == 200
    assert ops["production"]["version"] == shop.version
    assert ops["production"]["ndcg10"] > ops["production"]["popularityNdcg10"]
    # Where the version lets shoppers' own items back, the gate's other bar is shown too.
    manifest = json.loads((shop.lake / f"models/{shop.version}/manifest.json").read_text())
    assert ops["production"]["ownHistoryNdcg10"] == manifest["gate"]["own_history"]
    assert manifest["tuning"]["blend"]["repeats"] != "exclude-seen"
    assert ops["production"]["ndcg10"] > ops["production"]["ownHistoryNdcg10"] > 0
    assert ops["runs"][0]["runId"] == run.run_id
    assert ops["funnel"]
    assert {"views", "carts", "purchases", "from_recommendations"} <= set(ops["funnel"][0])
    assert ops["topItems"][0]["title"]
    assert ops["experiment"] is None  # none has run
    assert ops["api"]["requests"] == 4
    assert ops["api"]["errors4xx"] == 1
    assert ops["api"]["p50Ms"] > 0


def test_with_api_keys_the_pages_hold_none_and_the_data_needs_one(keyed: str) -> None:
    for path in ("/", "/ops", "/ui/static/common.js", "/ui/static/store.js", "/ui/config"):
        assert KEY.encode() not in _get(keyed + path)[2]
    assert _json(keyed + "/ui/config") == (200, {"keyRequired": True, "demo": True})
    assert _json(keyed + "/ui/ops")[0] == 401
    assert _json(keyed + "/ui/catalog", **{"X-Api-Key": "wrong"})[0] == 401
    assert _json(keyed + "/ui/catalog", **{"X-Api-Key": "wr\xf6ng"})[0] == 401  # was a 500
    assert _json(keyed + "/ui/catalog", **{"X-Api-Key": KEY})[0] == 200


def test_serve_without_ui_runs_the_api_alone(
    shop: PublishedShop, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from click.testing import CliRunner

    from orchestration.cli import recs

    started: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: started.append(app))
    # `recs serve` hands its settings to its workers through the environment: keep ours.
    monkeypatch.setattr(os, "environ", os.environ.copy())
    for flags, expected in (([], "orchestration.ui.server:create_app"),
                            (["--no-ui"], "serving.server:create_app")):  # fmt: skip
        done = CliRunner().invoke(recs, ["serve", *flags, "--lake", str(shop.lake)])
        assert done.exit_code == 0, done.output
        assert started[-1] == expected
        assert ("store: http://" in done.output) == (not flags)


def test_the_quarantine_shows_a_real_imports_reasons(tmp_path: Path) -> None:
    """Before, the ops page's latest reasons were blank for an import: the importer wrote
    each refusal's reason as `error`, the page read `reason` (as the ETL writes it)."""
    from ingestion.importer import import_files
    from orchestration.ui.data import quarantine

    lake = LocalLake(tmp_path / "lake")
    csv = tmp_path / "interactions.csv"
    csv.write_text(
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n"
        "U1,I1,1755369000,view\n"
        "U2,I2,not-a-time,view\n"
        "U3,,1755369000,view\n",
        encoding="utf-8",
    )
    [report] = import_files(lake, interactions=csv, now=datetime(2026, 11, 25, tzinfo=UTC))
    assert report.rejected == 2
    shown = quarantine(lake)
    assert shown["byZone"] == {"import": 2}
    reasons = [entry["reason"] for entry in shown["latest"]]
    assert len(reasons) == 2
    assert any("TIMESTAMP must be Unix seconds" in reason for reason in reasons), reasons
    assert any("item_id must not be empty" in reason for reason in reasons), reasons


def test_the_production_versions_gate_line_says_nothing_stale(shop: PublishedShop) -> None:
    """Before, the ops page showed "no model is in production yet" beside the very version
    in production: true when the gate judged it, stale since (issue 27, item 9)."""
    from orchestration.ui.data import ops
    from training.versions import versions

    lake = LocalLake(shop.lake)
    [judged] = [v for v in versions(lake) if v.version == shop.version]
    assert any("no model is in production yet" in r for r in judged.reasons)  # as judged
    production = ops(lake)["production"]
    assert production["version"] == shop.version
    assert production["reasons"]  # the rest of the verdict stays
    assert not any("no model is in production yet" in r for r in production["reasons"])


def test_each_import_run_is_shown_with_the_refusals_a_later_run_took_in(tmp_path: Path) -> None:
    """Issue 27, item 10: the page said "import 3 refused records" after a second import
    with the missing --map had taken all of them in."""
    from ingestion.importer import ImportOptions, import_files
    from orchestration.ui.data import quarantine

    lake = LocalLake(tmp_path / "lake")
    csv = tmp_path / "interactions.csv"
    csv.write_text(
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nU1,I1,1755369000,view\n"
        "U2,I2,1755369000,share\nU3,I3,1755369000,share\nU4,I4,1755369000,share\n"
        "U5,I5,later,view\n",
        encoding="utf-8",
    )
    now = datetime(2026, 11, 25, tzinfo=UTC)
    import_files(lake, interactions=csv, now=now)
    [first] = quarantine(lake)["runs"]
    assert (first["zone"], first["refused"], first["taken"]) == ("import", 4, 0)
    options = ImportOptions(event_types={"share": "view"})
    later = now.replace(minute=1)
    [again] = import_files(lake, interactions=csv, options=options, now=later)
    assert again.taken == {first["run"]: 3}
    runs = quarantine(lake)["runs"]
    assert [(r["refused"], r["taken"]) for r in runs] == [(1, 0), (4, 3)]  # newest first
    # The same import again takes nothing new: the rows are counted once.
    [third] = import_files(lake, interactions=csv, options=options, now=now.replace(minute=2))
    assert third.taken == {}
    assert [(r["refused"], r["taken"]) for r in quarantine(lake)["runs"]][-1] == (4, 3)


def test_a_catalog_without_titles_shows_ids_with_their_category(tmp_path: Path) -> None:
    """Issue 27, item 12: a catalog imported without titles showed bare numbers; the store
    now shows each id with its category and says how to add titles."""
    from etl.job import run_etl
    from ingestion.importer import import_files
    from orchestration.ui.data import catalog, items

    lake = LocalLake(tmp_path / "lake")
    events = tmp_path / "interactions.csv"
    events.write_text("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nU1,101,1755369000,view\n")
    products = tmp_path / "items.csv"
    products.write_text("ITEM_ID,CATEGORY\n101,shoes\n102,\n")
    now = datetime(2026, 11, 25, tzinfo=UTC)
    import_files(lake, interactions=events, items=products, now=now)
    run_etl(lake, now=now)
    shown = catalog(lake)
    assert (shown["untitled"], shown["items"]) == (2, 2)
    titles = {i["id"]: i["title"] for c in shown["categories"] for i in c["items"]}
    assert titles == {"101": "101 · shoes", "102": "102"}
    assert items(lake, ["101"])["101"]["title"] == "101 · shoes"


def test_ops_shows_the_last_experiment_live_while_it_runs_and_as_it_ended(
    tmp_path: Path,
) -> None:
    from orchestration.ui.data import experiment
    from serving.experiment import Experiment, end_record, save_record

    lake = LocalLake(tmp_path / "lake")
    running = Experiment("exp-1", "v2", "v1", 0.1, "2026-11-02T00:00:00.000Z")
    save_record(lake, running)
    shown = experiment(lake)
    assert shown is not None
    assert shown["experiment"]["id"] == "exp-1"
    assert shown["verdict"] == "no-shoppers"  # nothing curated yet: counted, not refused
    assert set(shown["arms"]) == {"control", "candidate"}
    end_record(lake, running, "stopped", outcome={"verdict": "not-clear", "says": "kept"})
    assert experiment(lake) == {"verdict": "not-clear", "says": "kept"}
