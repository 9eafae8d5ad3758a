"""The routes' pure parts (`serving.routes`), and routers that belong to the app they serve."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.lake import LocalLake
from ingestion.sinks import EventLog, LocalSink
from serving.app import build_app, make_handler
from serving.asgi import TIMEOUT_MS, to_event
from serving.idempotency import LocalRequestContext, SQLitePersistenceLayer
from serving.recommend import LiveModel, Recommender
from serving.routes.events import parse_batch
from serving.routes.recommendations import Filter, parse_filter
from serving.services import Services
from serving.store import SQLiteStore

NOW = datetime(2026, 11, 2, tzinfo=UTC)


def _record(user: str, **more: Any) -> dict[str, Any]:
    return {"userId": user, "itemId": "I1", "event_type": "view", **more}


def test_parse_batch_returns_the_events_and_each_refused_ones_reason() -> None:
    records = [
        _record("U1", eventId="e1"),
        _record("U2", event_type="like"),
        _record("U3", eventId="e1"),
        _record("U4"),
    ]
    parsed = parse_batch(records, batch=True, idempotency_key=None, now=NOW, scope="")
    assert [e.user_id for e in parsed.events] == ["U1", "U4"]
    assert [p["index"] for p in parsed.problems] == [1, 2]
    assert "event_type" in parsed.problems[0]["error"]
    assert (
        parsed.problems[1]["error"] == "eventId 'e1' is also event 0's; give each event its own id"
    )


def test_parse_batch_gives_an_idempotent_batch_the_same_ids_on_a_retry() -> None:
    records = [_record("U1"), _record("U1")]
    once, again = (
        parse_batch(records, batch=True, idempotency_key="k1", now=NOW, scope="s") for _ in range(2)
    )
    assert [e.event_id for e in once.events] == [e.event_id for e in again.events]
    assert len({e.event_id for e in once.events}) == 2
    other = parse_batch(records, batch=True, idempotency_key="k1", now=NOW, scope="t")
    assert {e.event_id for e in other.events}.isdisjoint(e.event_id for e in once.events)


@pytest.mark.parametrize(
    ("raw", "wanted"),
    [
        (None, Filter()),
        ("not-seen", Filter(not_seen=True)),
        ("not-purchased", Filter(not_purchased=True)),
        ("category:shoes", Filter(category="shoes")),
    ],
)
def test_parse_filter(raw: str | None, wanted: Filter) -> None:
    assert parse_filter(raw) == wanted


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("cheap", "filter must be not-purchased, not-seen or category:<name> (got 'cheap')"),
        ("category:", "filter category:<name> needs a category name"),
        ("category:a\x01", "needs a name of printable characters"),
    ],
)
def test_parse_filter_says_what_was_wrong(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_filter(raw)


def _services(folder: Path) -> tuple[Services, EventLog]:
    lake = LocalLake(folder / "lake")
    store = SQLiteStore(folder / "store.sqlite3")
    log = EventLog(folder / "event-log.sqlite3")
    services = Services(
        recommender=Recommender(LiveModel(lake, store), store, log),
        sink=LocalSink(log, lake),
        idempotency=SQLitePersistenceLayer(folder / "idempotency.sqlite3"),
    )
    return services, log


def _post(handler: Any, user: str) -> dict[str, Any]:
    scope = {
        "method": "POST",
        "path": "/v1/events",
        "headers": [(b"content-type", b"application/json")],
    }
    response: dict[str, Any] = handler(
        to_event(scope, json.dumps(_record(user)).encode()),
        LocalRequestContext(timeout_ms=TIMEOUT_MS),
    )
    return response


def test_two_apps_in_one_process_each_answer_with_their_own_services(tmp_path: Path) -> None:
    """Routers are built per app: a router shared by two apps would read the context of the
    last one that included it, and the first app's requests would find no services."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, first_log = _services(tmp_path / "a")
    second, second_log = _services(tmp_path / "b")
    handler_a = make_handler(build_app(first), first)
    handler_b = make_handler(build_app(second), second)
    assert _post(handler_a, "U1")["statusCode"] == 202
    assert _post(handler_b, "U2")["statusCode"] == 202
    assert _post(handler_a, "U3")["statusCode"] == 202
    assert [e.item_id for e in first_log.recent("U1")] == ["I1"]
    assert [e.item_id for e in first_log.recent("U3")] == ["I1"]
    assert second_log.recent("U1") == []
    assert [e.item_id for e in second_log.recent("U2")] == ["I1"]


def test_counts_are_kept_only_where_metrics_are_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.services import count, metrics

    metrics.clear_metrics()
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    count("Probe")
    assert "Probe" not in metrics.metric_set
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    count("Probe", 2)
    assert metrics.metric_set["Probe"]["Value"] == [2.0]
    metrics.clear_metrics()
