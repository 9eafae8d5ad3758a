"""The ETL's reader of raw events: the fast path must agree with the contract on every line."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from common.contract import parse_stored_event
from common.errors import InvalidEvent, Problem
from etl.events import MAX_QUARANTINED_BYTES, RawObject, decompress, read_events

NOW = datetime(2026, 11, 1, tzinfo=UTC)
GOOD: dict[str, Any] = {
    "event_id": "e-1",
    "user_id": "U1",
    "item_id": "I100",
    "event_type": "view",
    "ts": "2026-10-31T18:30:00.123Z",
}


def _line(record: Any) -> bytes:
    return record if isinstance(record, bytes) else json.dumps(record).encode()


def _expected(line: bytes) -> dict[str, Any] | None:
    """What the contract alone makes of one line: the curated row, or None if refused."""
    try:
        event = parse_stored_event(line, now=NOW)
    except InvalidEvent:
        return None
    properties = event.properties
    return {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "item_id": event.item_id,
        "event_type": event.event_type,
        "ts": event.ts.replace(microsecond=event.ts.microsecond // 1000 * 1000),
        "session_id": event.session_id,
        "price": event.price,
        "quantity": event.quantity,
        "properties": None
        if properties is None
        else json.dumps(properties, sort_keys=True, separators=(",", ":")),
        "recommendation_id": event.recommendation_id,
        "shop_event_type": event.shop_event_type,
    }


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.drop_columns(["_seq"]).to_pylist()


CASES: list[tuple[str, Any]] = [
    ("our writers' line", GOOD),
    (
        "camelCase names",
        {
            "eventId": "e",
            "userId": "U1",
            "itemId": "I1",
            "eventType": "view",
            "ts": "2026-10-31T18:30:00Z",
        },
    ),
    ("both spellings", {**GOOD, "userId": "U2"}),
    ("alias null beside the other", {**GOOD, "userId": None}),
    ("explicit null session", {**GOOD, "session_id": None}),
    ("null event id", {**GOOD, "event_id": None}),
    ("no event id: derived from the bytes", {k: v for k, v in GOOD.items() if k != "event_id"}),
    ("no ts", {k: v for k, v in GOOD.items() if k != "ts"}),
    ("ts with offset", {**GOOD, "ts": "2026-10-31T20:30:00.5+02:00"}),
    ("ts with microseconds", {**GOOD, "ts": "2026-10-31T18:30:00.123999Z"}),
    ("ts with nanoseconds", {**GOOD, "ts": "2026-10-31T18:30:00.123456789Z"}),
    ("ts with a space", {**GOOD, "ts": "2026-10-31 18:30:00Z"}),
    ("ts without zone", {**GOOD, "ts": "2026-10-31T18:30:00"}),
    ("ts that does not exist", {**GOOD, "ts": "2026-02-30T18:30:00Z"}),
    ("ts leap second", {**GOOD, "ts": "2026-06-30T23:59:60Z"}),
    ("ts in the future", {**GOOD, "ts": "2026-11-01T00:06:00Z"}),
    ("ts just inside the skew", {**GOOD, "ts": "2026-11-01T00:04:59Z"}),
    ("ts before 2000", {**GOOD, "ts": "1999-12-31T23:59:59Z"}),
    ("ts a number", {**GOOD, "ts": 1700000000}),
    ("unknown event type", {**GOOD, "event_type": "click"}),
    ("event type in capitals", {**GOOD, "event_type": "VIEW"}),
    ("empty user id", {**GOOD, "user_id": ""}),
    ("blank user id", {**GOOD, "user_id": "   "}),
    ("user id with a tab", {**GOOD, "user_id": "U\t1"}),
    ("user id with NUL", {**GOOD, "user_id": "U\u00001"}),
    ("non-ASCII item id", {**GOOD, "item_id": "Ĩtem-ü"}),
    ("non-breaking space id", {**GOOD, "item_id": "\u00a0"}),
    ("id of 256", {**GOOD, "item_id": "I" * 256}),
    ("id of 257", {**GOOD, "item_id": "I" * 257}),
    ("numeric user id", {**GOOD, "user_id": 7}),
    ("price", {**GOOD, "event_type": "purchase", "price": 9.99, "quantity": 2}),
    ("integer price", {**GOOD, "price": 10}),
    ("negative price", {**GOOD, "price": -1.0}),
    ("negative zero price", {**GOOD, "price": -0.0}),
    ("string price", {**GOOD, "price": "9.99"}),
    (
        "huge price",
        b'{"event_id":"e","user_id":"U","item_id":"I","event_type":"view",'
        b'"ts":"2026-10-31T18:30:00Z","price":1e400}',
    ),
    (
        "NaN price",
        b'{"event_id":"e","user_id":"U","item_id":"I","event_type":"view",'
        b'"ts":"2026-10-31T18:30:00Z","price":NaN}',
    ),
    ("quantity 0", {**GOOD, "quantity": 0}),
    ("quantity 10001", {**GOOD, "quantity": 10001}),
    ("quantity float", {**GOOD, "quantity": 1.0}),
    ("quantity bool", {**GOOD, "quantity": True}),
    ("properties", {**GOOD, "properties": {"color": "red", "size": 42}}),
    ("recommendation id", {**GOOD, "recommendation_id": "5c1f-rid"}),
    ("recommendationId", {**GOOD, "recommendationId": "5c1f-rid"}),
    ("both recommendation ids", {**GOOD, "recommendationId": "a", "recommendation_id": "b"}),
    ("blank recommendation id", {**GOOD, "recommendation_id": " "}),
    ("shop event type", {**GOOD, "event_type": "add_to_cart", "shop_event_type": "fav"}),
    ("shopEventType", {**GOOD, "shopEventType": "wishlist"}),
    ("both shop event types", {**GOOD, "shopEventType": "a", "shop_event_type": "b"}),
    ("empty shop event type", {**GOOD, "shop_event_type": ""}),
    ("properties not an object", {**GOOD, "properties": [1]}),
    ("unknown field", {**GOOD, "coupon": "X"}),
    ("unknown field null", {**GOOD, "coupon": None}),
    (
        "duplicate key",
        b'{"event_id":"e","user_id":"U","user_id":"V","item_id":"I",'
        b'"event_type":"view","ts":"2026-10-31T18:30:00Z"}',
    ),
    ("not JSON", b"hello"),
    ("a JSON array", b"[1, 2]"),
    ("two objects on a line", _line(GOOD) + _line({**GOOD, "event_id": "e-2"})),
    ("leading whitespace", b"  " + _line(GOOD)),
    ("bad UTF-8", _line(GOOD)[:-2] + b'\xff"}'),
    ("over 16 KiB", _line({**GOOD, "session_id": "S"}).replace(b"{", b"{" + b" " * 17000, 1)),
]


@pytest.mark.parametrize(("name", "record"), CASES, ids=[c[0] for c in CASES])
def test_the_fast_path_agrees_with_the_contract(name: str, record: Any) -> None:
    line = _line(record)
    # Alone, and between good lines (so that the object would otherwise be fast).
    for body in (line + b"\n", _line(GOOD) + b"\n" + line + b"\n" + _line(GOOD) + b"\n"):
        result = read_events([RawObject("raw/k", 0, body)], now=NOW)
        expected = [_expected(part) for part in body.split(b"\n") if part.strip()]
        accepted = [row for row in expected if row is not None]
        assert _rows(result.table) == accepted, name
        assert len(result.rejected) == expected.count(None)
        assert result.lines == len(expected)


def _mutations(rng: random.Random) -> bytes:
    record: dict[str, Any] = dict(GOOD, event_id=f"e{rng.randrange(10**9)}")
    for _ in range(rng.randrange(3)):
        choice = rng.randrange(9)
        field = rng.choice(["event_id", "user_id", "item_id", "event_type", "ts", "session_id"])
        if choice == 0:
            record.pop(field, None)
        elif choice == 1:
            record[field] = rng.choice([None, 1, "", " ", "x" * 300, "ü", True, {"a": 1}])
        elif choice == 2:
            camel = {"event_id": "eventId", "user_id": "userId", "item_id": "itemId"}
            if field in camel:
                record[camel[field]] = record.pop(field, "v")
        elif choice == 3:
            record["ts"] = rng.choice(
                [
                    "2026-10-31T18:30:00Z",
                    "2026-10-31T18:30:00+05:30",
                    "2026-13-01T00:00:00Z",
                    "2026-10-31T18:30:00.1234Z",
                    "2026-10-31",
                    "yesterday",
                    "2026-11-02T00:00:00Z",
                ]
            )
        elif choice == 4:
            record["price"] = rng.choice([0, 1.5, -2, "3", None, 1e308])
        elif choice == 5:
            record["quantity"] = rng.choice([1, 0, 5, 10_000, 10_001, 2.5, None])
        elif choice == 6:
            record["event_type"] = rng.choice(["view", "add_to_cart", "purchase", "wish", None])
        elif choice == 7:
            record["properties"] = rng.choice([{"k": "v"}, {}, None, "x"])
        else:
            record[rng.choice(["extra", "sessionId"])] = "s"
    return json.dumps(record).encode()


def test_fuzzed_objects_read_as_the_contract_reads_each_line() -> None:
    rng = random.Random(20261124)
    objects = []
    expected: list[dict[str, Any]] = []
    refused = 0
    for ordinal in range(30):
        lines = [
            _mutations(rng)
            if rng.random() < 0.3
            else _line({**GOOD, "event_id": f"g{ordinal}-{i}"})
            for i in range(rng.randrange(1, 60))
        ]
        objects.append(RawObject(f"raw/{ordinal}", ordinal, b"\n".join(lines) + b"\n"))
        for line in lines:
            row = _expected(line)
            if row is None:
                refused += 1
            else:
                expected.append(row)
    result = read_events(objects, now=NOW)
    assert _rows(result.table) == expected
    assert len(result.rejected) == refused
    assert result.lines == len(expected) + refused


def test_refusals_name_the_object_the_line_and_the_reason() -> None:
    body = b"\n".join(
        [_line(GOOD), b"", _line({**GOOD, "event_type": "click"}), b"not json", _line(GOOD)]
    )
    result = read_events([RawObject("raw/events/k", 3, body + b"\n")], now=NOW)
    refused = [(r.source, r.line, r.problems[0].field) for r in result.rejected]
    assert refused == [("raw/events/k", 3, "event_type"), ("raw/events/k", 4, "body")]
    assert result.rejected[0].to_json()["reason"].startswith("event_type must be one of")
    assert result.table["_seq"].to_pylist() == [(3 << 32) | 1, (3 << 32) | 5]
    assert result.lines == 4


def test_the_quarantine_keeps_the_head_of_a_huge_line_and_its_size() -> None:
    """Before: a 50 MB line was copied whole into the quarantine."""
    huge = _line({**GOOD, "itemId": "I" * 5_000_000})
    result = read_events([RawObject("raw/events/h", 0, huge + b"\n")], now=NOW)
    (refused,) = result.rejected
    kept = refused.to_json()
    assert kept["record_bytes"] == len(huge)
    assert kept["record"].encode() == huge[:MAX_QUARANTINED_BYTES]
    small = read_events([RawObject("raw/events/s", 0, b"not json\n")], now=NOW).rejected[0]
    assert "record_bytes" not in small.to_json()


def test_gzip_and_plain_objects_are_told_apart_by_content() -> None:
    body = _line(GOOD) + b"\n"
    assert decompress("raw/a", gzip.compress(body)) == (body, None)
    assert decompress("raw/b", body[:-1]) == (body, None)  # a missing final newline is added
    assert decompress("raw/c", gzip.compress(body) + gzip.compress(body)) == (body * 2, None)
    assert decompress("raw/e", b"") == (b"", None)  # a plain object of no events


def _problem(found: tuple[bytes, Problem | None]) -> str:
    assert found[1] is not None
    return found[1].message


@pytest.mark.parametrize("padding", [1, 512, 10_000])
def test_zero_padding_after_gzip_is_read_as_gzip_reads_it(padding: int) -> None:
    """Before: an object gzip -dc reads whole was refused whole for its zero padding."""
    body = b"".join(_line({**GOOD, "itemId": f"I{n}"}) + b"\n" for n in range(50))
    padded = gzip.compress(body) + b"\0" * padding
    assert decompress("raw/p.gz", padded) == (body, None)
    both = gzip.compress(body) + b"\0" * padding + gzip.compress(body)
    assert decompress("raw/q.gz", both) == (body * 2, None)


def test_what_gzip_cannot_read_is_a_problem_and_what_came_before_it_is_kept() -> None:
    body = b"".join(_line({**GOOD, "itemId": f"I{n}"}) + b"\n" for n in range(50))
    whole = gzip.compress(body)
    # Bytes after the gzip data that are not gzip (gzip -dc: "trailing garbage ignored").
    read, problem = decompress("raw/g.gz", whole + b"garbage")
    assert read == body
    assert problem == Problem(
        "body",
        "Object raw/g.gz has 7 bytes after its gzip data that are not gzip; they were not read",
    )
    # Cut short: the lines it holds are read; the last, cut, line fails its parse later.
    read, problem = decompress("raw/t.gz", whole[: len(whole) // 2])
    assert body.startswith(read[: len(read) // 2])
    assert "ends before its gzip stream does" in _problem((read, problem))
    # A zero-byte .gz (an upload cut short) is recorded, not counted as an empty object.
    assert _problem(decompress("raw/z.gz", b"")) == (
        "Object raw/z.gz is empty (0 bytes) although named .gz; nothing read from it"
    )
    assert "is not valid gzip" in _problem(decompress("raw/d.gz", whole[:10] + b"x" * 40))
