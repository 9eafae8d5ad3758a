"""Hostile JSON at every entry point: it is refused or quarantined with a reason, never raised.

Python's JSON parser raises more than decode errors: an integer of over 4,300 digits, arrays
nested thousands deep, and `"\\ud800"` (a lone surrogate no UTF-8 writer can store) each used
to stop the ETL on every later run, the Kinesis history consumer (whose batch would retry
forever), `recs ingest` and `POST /v1/events`. hypothesis mixes them with valid events and
random JSON; each entry point must keep every good line and refuse every bad one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.contract import parse_stored_event
from common.errors import InvalidEvent
from etl.events import RawObject, read_events
from ingestion.consumer import kinesis_events
from orchestration.cli import recs
from serving.app import Handler
from serving.idempotency import LocalRequestContext
from tests.conftest import load_event
from tests.serving_helpers import PublishedShop, handler_for, published_shop, services_for

NOW = datetime(2026, 11, 2, tzinfo=UTC)
GOOD = {
    "user_id": "U1",
    "item_id": "I1",
    "event_type": "view",
    "ts": "2026-11-01T12:00:00.000Z",
}
POISON: list[bytes] = [
    b'{"user_id":"U1","item_id":"I1","event_type":"view","ts":"2026-11-01T12:00:00Z",'
    b'"quantity":' + b"9" * 5000 + b"}",
    b'{"user_id":' + b"[" * 6000 + b"]" * 6000 + b"}",
    b'{"properties":' + b'{"a":' * 3000 + b"1" + b"}" * 3001,
    b"[" * 100_000,
    b'{"user_id":"U1","item_id":"I1","event_type":"view","ts":"2026-11-01T12:00:00Z",'
    b'"properties":{"k":"\\ud800"}}',
    b'{"user_id":"\\udfff","item_id":"I1","event_type":"view","ts":"2026-11-01T12:00:00Z"}',
    b'{"user_id":"U1","item_id":"I1","event_type":"view","ts":"2026-11-01T12:00:00Z","price":NaN}',
    b'{"user_id":"U1","item_id":"I1","event_type":"view","ts":"2026-11-01T12:00:00Z",'
    b'"price":1e999}',
    b'{"user_id":"U\xff","item_id":"I1","event_type":"view","ts":"2026-11-01T12:00:00Z"}',
    b"\x00\x01\x02",
    b"null",
    b'{"user_id":"U1","user_id":"U2","item_id":"I1","event_type":"view"}',
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None)),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def hostile_line(draw: st.DrawFn) -> bytes:
    """A raw line: valid, poison, an event with one hostile field, or any JSON at all."""
    kind = draw(st.sampled_from(["good", "poison", "field", "any"]))
    if kind == "good":
        return json.dumps({**GOOD, "event_id": draw(st.uuids()).hex}).encode()
    if kind == "poison":
        return draw(st.sampled_from(POISON))
    if kind == "field":
        name = draw(st.sampled_from([*GOOD, "event_id", "properties", "price", "quantity"]))
        record: dict[str, Any] = {**GOOD, name: draw(json_values)}
        return json.dumps(record).encode()
    return json.dumps(draw(json_values)).encode()


def _is_good(line: bytes) -> bool:
    try:
        parse_stored_event(line, now=NOW)
    except InvalidEvent:
        return False
    return True


FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(st.lists(hostile_line(), min_size=1, max_size=12))
def test_the_etl_quarantines_every_hostile_line(lines: list[bytes]) -> None:
    body = b"\n".join(lines) + b"\n"
    raw = RawObject("raw/events/2026/11/01/12/fuzz-1-2026-11-01-12-00-00-x", 0, body)
    result = read_events([raw], now=NOW)
    expected_good = sum(_is_good(line) for line in lines if line.strip())
    assert result.table.num_rows == expected_good
    assert result.table.num_rows + len(result.rejected) == result.lines
    for rejected in result.rejected:
        assert rejected.problems
        json.dumps(rejected.to_json())  # the quarantine line itself can be written


@FUZZ
@given(st.lists(hostile_line(), min_size=1, max_size=12))
def test_the_history_consumer_skips_every_hostile_record(lines: list[bytes]) -> None:
    records = [
        {"kinesis": {"data": base64.b64encode(line).decode(), "sequenceNumber": str(n)}}
        for n, line in enumerate(lines)
    ]
    events, invalid = kinesis_events(records)
    counted = [part for line in lines for part in line.splitlines() if part.strip()]
    assert len(events) + invalid == len(counted)
    assert len(events) == sum(_is_good(part) for part in counted)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ingest")


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(hostile_line(), min_size=1, max_size=8))
def test_recs_ingest_keeps_the_good_lines_of_a_hostile_stream(
    workdir: Path, lines: list[bytes]
) -> None:
    text = [line.decode("utf-8", "replace") for line in lines if b"\n" not in line]
    result = CliRunner().invoke(
        recs,
        ["ingest", "--lake", str(workdir / "lake"), "--event-log", str(workdir / "log.db"), "-"],
        input="\n".join(text) + "\n",
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    good = sum(1 for line in text if line.strip() and _is_good(line.encode()))
    assert f"{good:,} events accepted by the local sink" in result.output


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> PublishedShop:
    return published_shop(tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="module")
def handler(shop: PublishedShop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handler]:
    services = services_for(shop, tmp_path_factory.mktemp("api"))
    yield handler_for(services)
    services.sink.close()


@FUZZ
@given(st.lists(hostile_line(), min_size=1, max_size=3), st.booleans())
def test_the_api_answers_every_hostile_body_with_a_json_400(
    handler: Handler, lines: list[bytes], as_batch: bool
) -> None:
    event = load_event("apigw_events_post.json")
    event["headers"].pop("idempotency-key", None)  # each example is a new request
    body = b"[" + b",".join(lines) + b"]" if as_batch else lines[0]
    event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = True
    response = handler(event, LocalRequestContext())
    assert response["statusCode"] in (202, 400), response
    reply = json.loads(response["body"])
    if response["statusCode"] == 400:
        assert isinstance(reply["error"], str)
        assert reply["error"]
