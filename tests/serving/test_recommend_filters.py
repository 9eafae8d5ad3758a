"""Named filters over the API: what each expression lets through, in the batch, realtime and
popular paths, over real HTTP; the 400s that say what was wrong; and a bad expression
refused at start-up with its position."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.contract import Event
from common.errors import SettingsError
from common.filters import NamedFilter
from common.lake import LocalLake
from serving.recommend import Named
from serving.services import Services
from serving.settings import ServingSettings
from tests.etl_helpers import NOW
from tests.serving_helpers import (
    PublishedShop,
    get_json,
    published_shop,
    services_for,
    serving,
)
from training.item_fields import ItemFields
from training.published import PublishedModel

FILTERS = {
    "in-categories": NamedFilter(expression="INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORIES)"),
    "at-most": NamedFilter(expression="EXCLUDE ItemID WHERE Items.PRICE > $MAX"),
    "not-bought": NamedFilter(
        expression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
    ),
    "viewed-lately": NamedFilter(
        expression='INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("view")', within_days=3
    ),
    "same-category": NamedFilter(
        expression="INCLUDE ItemID WHERE Items.CATEGORY IN CurrentItem.CATEGORY"
    ),
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> PublishedShop:
    return published_shop(tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="module")
def model(shop: PublishedShop) -> PublishedModel:
    return PublishedModel.load(LocalLake(shop.lake), shop.version)


@pytest.fixture
def services(shop: PublishedShop, tmp_path: Path) -> Services:
    built = services_for(shop, tmp_path)
    built.recommender.filters = FILTERS
    return built


def _values(fields: ItemFields, name: str, item: str, model: PublishedModel) -> Any:
    code = model.item_code(item)
    assert code is not None
    return fields.value_of(name, code)


def test_the_version_keeps_the_catalogs_fields(model: PublishedModel) -> None:
    assert model.fields is not None
    assert model.fields.n == model.n_codes
    assert {"CATEGORY", "BRAND", "PRICE", "CREATION_TIMESTAMP", "ACTIVE"} <= set(model.fields.names)
    code = 0
    assert model.fields.value_of("CATEGORY", code) == (str(model.categories[code]),)


def test_item_field_filters_hold_in_every_answer(services: Services, model: PublishedModel) -> None:
    fields = model.fields
    assert fields is not None
    categories = sorted(set(model.categories.tolist()))[:2]
    prices = fields.numeric["PRICE"]
    cheap = float(np.nanmedian(prices))
    users = [str(u) for u in model.user_ids[:30]]
    with serving(services) as base:
        sources = set()
        for user in [*users, "U-nobody"]:
            status, body = get_json(
                base,
                "/v1/recommendations/personalized",
                userId=user,
                k="10",
                filter="in-categories",
                filterValues=json.dumps({"CATEGORIES": ",".join(f'"{c}"' for c in categories)}),
            )
            assert status == 200, body
            sources.add(body["source"])
            assert len(body["items"]) == 10
            for item in body["items"]:
                assert _values(fields, "CATEGORY", item["id"], model)[0] in categories
            status, body = get_json(
                base,
                "/recommendations/personalized",  # the unversioned alias takes them too
                userId=user,
                k="10",
                filter="at-most",
                filterValues=json.dumps({"MAX": str(cheap)}),
            )
            assert status == 200, body
            assert all(_values(fields, "PRICE", i["id"], model) <= cheap for i in body["items"])
        assert {"batch", "popular"} <= sources
        # An EXCLUDE without its value is skipped, as Personalize skips it.
        status, body = get_json(
            base, "/v1/recommendations/personalized", userId=users[0], filter="at-most"
        )
        assert status == 200
        assert body["items"]


def test_interaction_filters_read_the_users_whole_history_and_news(
    services: Services, model: PublishedModel
) -> None:
    recommender = services.recommender
    user = str(model.user_ids[int(np.argmax(np.diff(model.history.indptr)))])
    code = model.user_code(user)
    assert code is not None
    history = model.history.user(code)
    bought = {str(model.item_ids[i]) for i in history.items[history.purchased]}
    assert bought
    named = Named.of("not-bought", FILTERS["not-bought"], {})
    answer = recommender.personalized(user, 50, named=named)
    assert not bought & {i for i, _ in answer.items}
    # A view posted now: "viewed in the last 3 days" holds that item and nothing older,
    # though the repeat policy would keep a user's own items out.
    seen = next(str(i) for i in model.item_ids if str(i) not in bought)
    event = Event.model_validate(
        {
            "userId": user,
            "itemId": seen,
            "event_type": "view",
            "ts": (NOW + timedelta(days=1)).isoformat(),
        }
    )
    services.sink.put([event])
    services.sink.flush()
    lately = Named.of("viewed-lately", FILTERS["viewed-lately"], {})
    answer = recommender.personalized(user, 10, named=lately)
    ids = [i for i, _ in answer.items]
    assert seen in ids
    # Nothing else: only items viewed within 3 days of the newest event known.
    now_ms = int(NOW.timestamp() * 1000) + 86_400_000
    recent = {
        str(model.item_ids[i])
        for i, last in zip(history.items.tolist(), history.last_by_type[:, 0].tolist(), strict=True)
        if last * 60_000 >= now_ms - 3 * 86_400_000
    }
    assert set(ids) <= recent | {seen}


def test_related_items_for_a_shopper_leave_out_what_they_bought(
    services: Services, model: PublishedModel
) -> None:
    user = str(model.user_ids[int(np.argmax(np.diff(model.history.indptr)))])
    code = model.user_code(user)
    assert code is not None
    history = model.history.user(code)
    bought = {str(model.item_ids[i]) for i in history.items[history.purchased]}
    # An item whose related list holds something the user bought.
    item = next(
        str(i) for i in model.item_ids if bought & {r for r, _ in model.related(str(i), 20) or []}
    )
    with serving(services) as base:
        status, body = get_json(
            base,
            "/v1/recommendations/related",
            itemId=item,
            k="20",
            userId=user,
            filter="not-bought",
        )
    assert status == 200, body
    assert body["related"]
    assert not bought & {r["id"] for r in body["related"]}


def test_related_items_filter_on_the_current_item(
    services: Services, model: PublishedModel
) -> None:
    fields = model.fields
    assert fields is not None
    with serving(services) as base:
        for item in [str(i) for i in model.item_ids[:20]]:
            status, body = get_json(
                base, "/v1/recommendations/related", itemId=item, k="5", filter="same-category"
            )
            assert status == 200, body
            want = _values(fields, "CATEGORY", item, model)
            assert body["related"]
            assert all(_values(fields, "CATEGORY", r["id"], model) == want for r in body["related"])


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("personalized", {"filter": "cheap"}, "one of the shop's filters (at-most"),
        ("personalized", {"filter": "in-categories"}, "INCLUDE needs filterValues for CATEGORIES"),
        ("personalized", {"filter": "at-most", "filterValues": "MAX=5"}, "JSON object"),
        ("personalized", {"filter": "at-most", "filterValues": '{"MAX": "x"}'}, "a number"),
        ("personalized", {"filter": "at-most", "filterValues": '{"MIN": "1"}'}, "does not take"),
        ("personalized", {"filterValues": '{"MAX": "1"}'}, "goes with a named filter"),
        ("related", {"filter": "not-bought"}, "need a user: add userId"),
        ("related", {"filter": "not-seen"}, "must name one of the shop's filters"),
        ("related", {"filter": "not-bought", "userId": " "}, "userId must be 1 to"),
    ],
)
def test_a_bad_filter_request_is_a_400_that_says_why(
    services: Services, path: str, params: dict[str, str], says: str
) -> None:
    who = {"userId": "U1"} if path == "personalized" else {"itemId": "I1"}
    with serving(services) as base:
        status, body = get_json(base, f"/v1/recommendations/{path}", **who, **params)
    assert status == 400
    assert says in body["error"]


def test_a_bad_expression_stops_the_api_at_start_up(tmp_path: Path) -> None:
    config = tmp_path / "recs.toml"
    config.write_text(
        "[filters.cheap]\n"
        "expression = 'INCLUDE ItemID WHERE Items.PRICE < $MAX'\n"
        "[filters.broken]\n"
        "expression = 'EXCLUDE ItemID WHERE Items.BRAND IN (\"a\",)'\n"
    )
    with pytest.raises(SettingsError) as caught:
        ServingSettings.from_env({"RECS_CONFIG": str(config)})
    message = str(caught.value)
    assert "filters in" in message
    assert "at broken.expression" in message
    assert str(config) in message
    assert "at column 42" in message
    assert "expected a value in double quotes" in message
    config.write_text("[filters.not-seen]\nexpression = 'EXCLUDE ItemID WHERE Items.PRICE > 1'\n")
    with pytest.raises(SettingsError, match="cannot name a filter"):
        ServingSettings.from_env({"RECS_CONFIG": str(config)})
    config.write_text("[filters.cheap]\nexpression = 'INCLUDE ItemID WHERE Items.PRICE < $MAX'\n")
    found = ServingSettings.from_env({"RECS_CONFIG": str(config)}).filters
    assert found["cheap"].parsed.params == {"MAX"}


def _post(base: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_ranking_leaves_out_what_the_filter_drops(
    services: Services, model: PublishedModel
) -> None:
    fields = model.fields
    assert fields is not None
    user = str(model.user_ids[0])
    items = [str(i) for i in model.item_ids[:40]]
    category = _values(fields, "CATEGORY", items[0], model)[0]
    body = {
        "userId": user,
        "itemIds": [*items, "I-unknown"],
        "filter": "in-categories",
        "filterValues": {"CATEGORIES": f'"{category}"'},
    }
    with serving(services) as base:
        status, answer = _post(base, "/v1/recommendations/ranking", body)
        assert status == 200, answer
        ranked = [i["id"] for i in answer["items"]]
        want = {i for i in items if _values(fields, "CATEGORY", i, model)[0] == category}
        # Every item of the category, re-ordered; nothing else (an unknown item has no
        # category, so an INCLUDE drops it).
        assert set(ranked) == want
        cheap = {**body, "filter": "at-most", "filterValues": {"MAX": "0"}}
        status, answer = _post(base, "/recommendations/ranking", cheap)
        assert status == 200, answer
        # Nothing costs at most 0 except items with no price: an EXCLUDE keeps the unknown one.
        kept = {i["id"] for i in answer["items"]}
        assert "I-unknown" in kept
        assert all(_values(fields, "PRICE", i, model) in (None, 0.0) for i in kept - {"I-unknown"})
        status, answer = _post(base, "/v1/recommendations/ranking", {**body, "filter": "nope"})
        assert status == 400
        assert "must name one of the shop's filters" in answer["error"]
