"""The GET routes' precompiled validation answers as Powertools' own middleware would.

Two apps over the same published shop: the API as it runs (`serving.validation.LEAN` on
the GET routes) and the same routes with Powertools' OpenAPI validation on every request.
Every generated query gets the same status and body from both (the random
recommendationId aside). The answers' shapes are checked against the spec by the fuzz
suite (`test_app_fuzz.py`), so no request needs response validation at run time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.app import Handler
from serving.asgi import to_event
from serving.idempotency import LocalRequestContext
from serving.routes import health, recommendations
from tests.serving_helpers import handler_for, published_shop, services_for

PATHS = ["/v1/recommendations/personalized", "/recommendations/related", "/v1/health"]
NAMES = ["userId", "itemId", "k", "exclude", "filter", "other"]
VALUES = st.one_of(
    st.sampled_from(["U1", "I3", "3", "0", "101", "-1", "1e2", " 5", "", "x" * 300, "a,b"]),
    st.sampled_from(["not-seen", "not-purchased", "category:", "category:Toys", "nope"]),
    st.text(max_size=12),
)


@pytest.fixture(scope="module")
def handlers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Handler, Handler]]:
    root: Path = tmp_path_factory.mktemp("validation")
    shop = published_shop(root)
    lean_services = services_for(shop, root / "lean")
    lean = handler_for(lean_services)
    with pytest.MonkeyPatch.context() as patch:
        for module in (recommendations, health):
            patch.setattr(module, "LEAN", {})  # the routes as Powertools validates them
        full_services = services_for(shop, root / "full")
        full = handler_for(full_services)
    yield lean, full
    lean_services.sink.close()
    full_services.sink.close()


def _answer(handler: Handler, path: str, query: str) -> tuple[int, Any]:
    scope = {"type": "http", "method": "GET", "path": path, "query_string": query.encode()}
    response = handler(to_event(scope, b""), LocalRequestContext(timeout_ms=30_000))
    body = json.loads(response["body"])
    if isinstance(body, dict):
        body.pop("recommendationId", None)
        body.get("model", {}).pop("dataAgeHours", None)
    return response["statusCode"], body


@given(
    path=st.sampled_from(PATHS),
    params=st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=5),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_lean_validation_answers_as_powertools_does(
    handlers: tuple[Handler, Handler], path: str, params: list[tuple[str, str]]
) -> None:
    query = "&".join(f"{name}={quote(value, safe=',')}" for name, value in params)
    lean, full = handlers
    assert _answer(lean, path, query) == _answer(full, path, query), query


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("userId=U1&k=0", 400, "k must be between 1 and 100"),
        ("userId=U1&k=3&k=4", 400, "k must be between 1 and 100"),
        ("k=3", 400, "Missing userId"),
        ("userId=" + "x" * 300, 400, "userId must be at most 256 characters"),
    ],
)
def test_the_lean_validation_refuses_in_the_readmes_words(
    handlers: tuple[Handler, Handler], query: str, status: int, message: str
) -> None:
    assert _answer(handlers[0], PATHS[0], query) == (status, {"error": message})
