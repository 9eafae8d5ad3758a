"""The event and catalog contracts: what is accepted, what is refused and how it is worded."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from common.contract import (
    MAX_EVENT_BYTES,
    event_id_for,
    json_schemas,
    parse_event,
    parse_item,
    parse_user,
)
from common.errors import InvalidCatalogRecord, InvalidEvent
from tests.conftest import EVENTS_DIR, load_event

NOW = datetime(2025, 8, 16, 19, 0, tzinfo=UTC)
GOOD: dict[str, Any] = {"userId": "U1", "itemId": "I100", "event_type": "view"}


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS_DIR.glob("event_*.json")))
def test_real_payloads_are_accepted(name: str) -> None:
    event = parse_event(json.dumps(load_event(name)), now=NOW)
    record = event.to_record()
    assert record["ts"].endswith("Z")
    assert set(record) <= {
        "event_id",
        "user_id",
        "item_id",
        "event_type",
        "ts",
        "session_id",
        "price",
        "quantity",
        "properties",
    }


def test_readme_event_is_stored_in_snake_case_utc() -> None:
    event = parse_event(json.dumps(load_event("event_purchase_full.json")), now=NOW)
    assert event.to_record() == {
        "event_id": "2b0c5a8e-4a53-4c57-9a0e-3f7d2e1b6c90",
        "user_id": "U1",
        "item_id": "I100",
        "event_type": "purchase",
        "ts": "2025-08-16T18:30:00.000Z",
        "session_id": "S-9f2",
        "price": 19.99,
        "quantity": 2,
        "properties": {"channel": "web", "coupon": False, "discount": 0.1},
    }


def test_ts_defaults_to_now_and_event_id_to_a_new_uuid() -> None:
    before = datetime.now(UTC)
    first, second = parse_event(GOOD), parse_event(GOOD)
    assert before <= first.ts <= datetime.now(UTC)
    assert first.event_id != second.event_id
    assert len(first.event_id) == 36


def test_idempotency_key_derives_a_stable_event_id() -> None:
    a = parse_event({**GOOD, "eventId": "ignored"}, idempotency_key="key-1")
    b = parse_event(GOOD, idempotency_key="key-1")
    assert a.event_id == b.event_id == event_id_for("key-1")
    assert parse_event(GOOD, idempotency_key="key-1", index=1).event_id != a.event_id
    assert parse_event(GOOD, idempotency_key="key-2").event_id != a.event_id


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"itemId": "I1", "event_type": "view"}, "Missing userId"),
        ({"userId": "U1", "event_type": "view"}, "Missing itemId"),
        ({"userId": "U1", "itemId": "I1"}, "Missing event_type"),
        (
            {**GOOD, "event_type": "click"},
            "event_type must be one of view, add_to_cart, purchase (got 'click')",
        ),
        ({**GOOD, "userId": 42}, "userId must be a string (got int 42)"),
        ({**GOOD, "itemId": ["I1"]}, "itemId must be a string"),
        ({**GOOD, "userId": ""}, "userId must not be empty"),
        ({**GOOD, "userId": "U" * 257}, "userId must be at most 256 characters (got 257)"),
        ({**GOOD, "userId": "U\x00"}, "userId must be 1 to 256 printable characters"),
        ({**GOOD, "userId": "   "}, "not blank"),
        ({**GOOD, "ts": "2025-08-16T19:05:01Z"}, "more than 5 minutes in the future"),
        ({**GOOD, "ts": "1999-12-31T23:59:59Z"}, "before 2000-01-01"),
        ({**GOOD, "ts": "2025-08-16T18:30:00"}, "ts must carry a time zone"),
        ({**GOOD, "ts": "yesterday"}, "ts must be an RFC 3339 timestamp"),
        ({**GOOD, "ts": 1755369000}, "ts must be an RFC 3339 timestamp string"),
        ({**GOOD, "price": -1}, "price must be at least 0"),
        ({**GOOD, "price": "9.99"}, "price must be a number"),
        ({**GOOD, "quantity": "2"}, "quantity must be a whole number"),
        ({**GOOD, "quantity": 0}, "quantity must be at least 1"),
        ({**GOOD, "properties": "x"}, "properties must be a JSON object"),
        (
            {**GOOD, "properties": {f"k{i}": i for i in range(51)}},
            "properties may hold at most 50 keys",
        ),
        ({**GOOD, "colour": "red"}, "Unknown field colour; put shop-specific attributes"),
        # Issue 27: a near miss of a known field names the field it most likely means.
        (
            {**GOOD, "timestamp": "2025-08-16T18:30:00Z"},
            "Unknown field timestamp; did you mean `ts`?",
        ),
        ({**GOOD, "usrId": "U1"}, "did you mean `userId`?"),
        ({**GOOD, "product_id": "I1"}, "did you mean `itemId`?"),
        ({**GOOD, "EVENT_TYPE": "view"}, "did you mean `event_type`?"),
        ({**GOOD, "quantiy": 2}, "did you mean `quantity`?"),
    ],
)
def test_bad_events_are_refused_naming_field_and_rule(
    payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidEvent) as refused:
        parse_event(payload, now=NOW)
    assert message in str(refused.value)
    assert message in refused.value.first.message


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2025-08-16t18:30:00z", datetime(2025, 8, 16, 18, 30, tzinfo=UTC)),
        ("2025-08-16 18:30:00+02:00", datetime(2025, 8, 16, 16, 30, tzinfo=UTC)),
        ("2025-08-16T18:30:00.123456789Z", datetime(2025, 8, 16, 18, 30, 0, 123456, tzinfo=UTC)),
        ("2025-08-16T18:30:00.5+01:30", datetime(2025, 8, 16, 17, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_every_rfc_3339_form_is_accepted(ts: str, expected: datetime) -> None:
    """Before: RFC 3339's lower-case t and z were refused."""
    assert parse_event({**GOOD, "ts": ts}, now=NOW).ts == expected


@pytest.mark.parametrize(
    "ts",
    ["2025-W33-6T18:30:00Z", "2025-08-16T18Z", "2025-08-16T18:30Z", "20250816T183000Z",
     "2025-08-16T18:30:00.Z", "2025-08-16T18:30:00.1234567890Z", "2025-13-16T18:30:00Z",
     "2025-08-16T18:30:60Z", "2025-08-16"],
)  # fmt: skip
def test_iso_8601_forms_that_are_not_rfc_3339_are_refused(ts: str) -> None:
    """Before: week dates, an hour alone and the basic format were accepted."""
    with pytest.raises(InvalidEvent, match="ts must be an RFC 3339 timestamp"):
        parse_event({**GOOD, "ts": ts}, now=NOW)


def test_ts_just_inside_the_clock_skew_is_accepted() -> None:
    ts = (NOW + timedelta(minutes=4, seconds=59)).isoformat()
    assert parse_event({**GOOD, "ts": ts}, now=NOW).ts > NOW


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Body is not valid JSON"),
        (b"[1, 2]", "An event must be a JSON object (got list)"),
        (b'"view"', "An event must be a JSON object (got str)"),
        (b"\xff\xfe", "Body is not valid JSON"),
    ],
)
def test_unparseable_bodies_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(InvalidEvent, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_event(body)


def test_oversized_payloads_are_refused_both_raw_and_parsed() -> None:
    big = {**GOOD, "properties": {f"k{i}": "x" * 1000 for i in range(20)}}
    with pytest.raises(InvalidEvent, match=f"the limit is {MAX_EVENT_BYTES}"):
        parse_event(json.dumps(big))
    with pytest.raises(InvalidEvent, match=f"the limit is {MAX_EVENT_BYTES}"):
        parse_event(big)


def test_every_problem_is_reported_first_one_first() -> None:
    with pytest.raises(InvalidEvent) as refused:
        parse_event({"event_type": "nope"})
    messages = [p.message for p in refused.value.problems]
    assert messages[0] == "Missing userId"
    assert len(messages) == 3


def test_committed_json_schemas_match_the_models() -> None:
    folder = Path(__file__).parents[2] / "common" / "schemas"
    for name, schema in json_schemas().items():
        committed = json.loads((folder / f"{name}.schema.json").read_text())
        assert committed == schema, f"regenerate common/schemas/{name}.schema.json"


def test_json_schema_agrees_with_the_validator_on_examples() -> None:
    schema = json_schemas()["event"]
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(load_event("event_view.json"))
    validator.validate(load_event("event_purchase_full.json"))
    for bad in (
        {"itemId": "I1", "event_type": "view"},
        {**GOOD, "event_type": "click"},
        {**GOOD, "userId": 1},
        {**GOOD, "colour": "red"},
    ):
        assert not validator.is_valid(bad)


ITEM = {
    "item_id": "I1",
    "title": "Lamp",
    "category": "home",
    "price": 19.99,
    "brand": "Acme",
    "created_at": "2025-01-01T00:00:00Z",
}


def test_catalog_records_validate() -> None:
    item = parse_item({**ITEM, "attributes": {"colour": "red"}})
    assert item.to_record()["created_at"] == "2025-01-01T00:00:00.000Z"
    assert parse_user({"user_id": "U1"}).to_record() == {"user_id": "U1", "attributes": {}}


def test_an_item_needs_only_its_id_as_in_personalize() -> None:
    record = parse_item({"item_id": "I1", "attributes": {"description": "x" * 20_000}})
    assert record.to_record() == {
        "item_id": "I1",
        "title": None,
        "category": None,
        "price": None,
        "brand": None,
        "created_at": None,
        "attributes": {"description": "x" * 20_000},
    }


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({k: v for k, v in ITEM.items() if k != "item_id"}, "Missing item_id"),
        ({**ITEM, "title": ""}, "title must not be empty"),
        ({**ITEM, "title": "T" * 1001}, "title must be at most 1000 characters (got 1001)"),
        ({**ITEM, "attributes": {"description": "x" * 20_001}}, "longer than 20000 characters"),
        ({**ITEM, "price": -2}, "price must be at least 0"),
        ({**ITEM, "created_at": "2025-01-01T00:00:00"}, "created_at must carry a time zone"),
        ({**ITEM, "created_at": "2025-01-01"}, "created_at must be an RFC 3339 timestamp"),
        ({**ITEM, "item_id": 7}, "item_id must be a string"),
    ],
)
def test_bad_catalog_records_are_refused(record: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidCatalogRecord, match=re.escape(message)):
        parse_item(record)
