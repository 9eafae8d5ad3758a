"""Recent history for realtime answers: one suite against both adapters of the seam.

The local event log (what `recs serve` reads) and the DynamoDB table the Kinesis consumer
fills (what the Lambda reads) must answer `recent(user_id)` the same way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from common.contract import Event, parse_event
from common.dynamodb import batch_write
from common.errors import SettingsError, UnprocessedWrites
from ingestion.consumer import handler
from ingestion.errors import DeliveryFailed
from ingestion.history import DynamoHistory, RecentEvent, RecentHistory
from ingestion.sinks.local import EventLog
from tests.conftest import create_history_table, load_event

TABLE = "recs-history"
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
Append = Callable[[Sequence[Event]], Any]


def _create_table(client: Any) -> None:
    create_history_table(client, TABLE)


@pytest.fixture(params=["local", pytest.param("dynamodb", marks=pytest.mark.aws)])
def history(
    request: pytest.FixtureRequest, tmp_path: Path, aws_env: None
) -> Iterator[tuple[RecentHistory, Append]]:
    """Each adapter, with the function that writes events into it."""
    if request.param == "local":
        log = EventLog(tmp_path / "event-log.sqlite3")
        yield log, log.append
        log.close()
        return
    with mock_aws():
        client = boto3.client("dynamodb")
        _create_table(client)
        table = DynamoHistory(TABLE, client=client)
        yield table, table.append


def _event(user: str, item: str, minutes: int, kind: str = "view", eid: str = "") -> Event:
    ts = (T0 + timedelta(minutes=minutes)).isoformat()
    record = {"user_id": user, "item_id": item, "event_type": kind, "ts": ts}
    if eid:
        record["event_id"] = eid
    return parse_event(record, now=T0 + timedelta(days=1))


def test_a_users_events_come_newest_first(history: tuple[RecentHistory, Append]) -> None:
    store, append = history
    append([_event("U1", "I1", 0), _event("U1", "I2", 5, "add_to_cart"), _event("U2", "I3", 1)])
    append([_event("U1", "I3", 9, "purchase")])
    ms = int(T0.timestamp() * 1000)
    assert store.recent("U1") == [
        RecentEvent("I3", "purchase", ms + 9 * 60_000),
        RecentEvent("I2", "add_to_cart", ms + 5 * 60_000),
        RecentEvent("I1", "view", ms),
    ]
    assert [e.item_id for e in store.recent("U1", limit=2)] == ["I3", "I2"]
    assert store.recent("U2") == [RecentEvent("I3", "view", ms + 60_000)]


def test_an_unknown_user_has_no_history(history: tuple[RecentHistory, Append]) -> None:
    store, _ = history
    assert store.recent("nobody") == []


def test_a_redelivered_event_is_stored_once(history: tuple[RecentHistory, Append]) -> None:
    store, append = history
    event = _event("U1", "I1", 0, eid="e-1")
    append([event])
    append([event])
    assert len(store.recent("U1")) == 1


@pytest.mark.aws
def test_the_kinesis_consumer_fills_the_table(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECS_HISTORY", f"dynamodb://{TABLE}")
    with mock_aws():
        client = boto3.client("dynamodb")
        _create_table(client)
        result = handler(load_event("kinesis_history.json"), None)
        assert result == {"written": 3, "invalid": 1, "batchItemFailures": []}
        table = DynamoHistory(TABLE, client=client)
        assert [e.item_id for e in table.recent("U1")] == ["I7", "I100"]
        assert table.recent("U2")[0].event_type == "purchase"


def test_the_kinesis_consumer_names_its_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECS_HISTORY", raising=False)
    monkeypatch.delenv("RECS_HISTORY_TABLE", raising=False)
    with pytest.raises(SettingsError, match="set RECS_HISTORY to dynamodb://TABLE"):
        handler(load_event("kinesis_history.json"), None)


@pytest.mark.aws
def test_the_consumer_still_reads_the_old_table_setting_with_a_warning(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RECS_HISTORY_TABLE, the consumer's own setting before RECS_HISTORY served both, keeps
    working for one release."""
    monkeypatch.delenv("RECS_HISTORY", raising=False)
    monkeypatch.setenv("RECS_HISTORY_TABLE", TABLE)
    with mock_aws():
        _create_table(boto3.client("dynamodb"))
        with pytest.warns(
            FutureWarning, match="RECS_HISTORY_TABLE is deprecated .* set RECS_HISTORY"
        ):
            result = handler(load_event("kinesis_history.json"), None)
    assert result["written"] == 3


class _Throttled:
    """A DynamoDB client that leaves the last item of each call unprocessed `times` times."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.calls: list[int] = []

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        [(table, requests)] = RequestItems.items()
        self.calls.append(len(requests))
        if self.times:
            self.times -= 1
            return {"UnprocessedItems": {table: requests[-1:]}}
        return {"UnprocessedItems": {}}


def test_batch_write_resends_what_dynamodb_leaves_unprocessed() -> None:
    client = _Throttled(times=2)
    requests = [{"PutRequest": {"Item": {"n": {"N": str(i)}}}} for i in range(30)]
    batch_write(client, TABLE, requests, sleep=lambda _: None)  # type: ignore[arg-type]
    assert client.calls == [25, 1, 1, 5]


def test_batch_write_gives_up_naming_the_table() -> None:
    client = _Throttled(times=100)
    with pytest.raises(UnprocessedWrites, match=f"DynamoDB table {TABLE} kept leaving writes"):
        batch_write(client, TABLE, [{"PutRequest": {}}], attempts=3, sleep=lambda _: None)  # type: ignore[arg-type]
    assert client.calls == [1, 1, 1]


def _kinesis_batch(n: int) -> dict[str, Any]:
    records = []
    for i in range(n):
        line = json.dumps(
            {"event_id": f"e{i}", "user_id": "U1", "item_id": f"I{i}", "event_type": "view",
             "ts": f"2026-11-20T10:{i // 60:02d}:{i % 60:02d}.000Z"}
        )  # fmt: skip
        data = base64.b64encode(line.encode()).decode()
        records.append({"kinesis": {"sequenceNumber": f"{i:05d}", "data": data}})
    return {"Records": records}


@pytest.mark.aws
def test_the_kinesis_consumer_reports_the_first_record_it_could_not_write(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECS_HISTORY", f"dynamodb://{TABLE}")
    calls: list[int] = []
    real_append = DynamoHistory.append

    def second_batch_fails(self: DynamoHistory, events: Sequence[Event]) -> int:
        calls.append(len(events))
        if len(calls) == 2:
            raise DeliveryFailed(f"DynamoDB table {TABLE} kept leaving writes unprocessed")
        return real_append(self, events)

    monkeypatch.setattr(DynamoHistory, "append", second_batch_fails)
    with mock_aws():
        client = boto3.client("dynamodb")
        _create_table(client)
        result = handler(_kinesis_batch(30), None)
        # The first 25 are written; Lambda retries from record 25 on, not the whole batch.
        assert calls == [25, 5]
        assert result["written"] == 25
        assert result["batchItemFailures"] == [{"itemIdentifier": "00025"}]
        assert len(DynamoHistory(TABLE, client=client).recent("U1", limit=100)) == 25


class _Slow:
    """A thread-safe DynamoDB client whose calls take a while, counting how many overlap."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.written: list[int] = []
        self.in_flight = self.most = 0

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        import time

        [(_, requests)] = RequestItems.items()
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        time.sleep(0.01)
        with self.lock:
            self.in_flight -= 1
            self.written.extend(int(r["PutRequest"]["Item"]["n"]["N"]) for r in requests)
        return {"UnprocessedItems": {}}


def test_batch_write_keeps_several_batches_in_flight_and_writes_each_row_once() -> None:
    """The nightly publish of millions of rows, one batch after another, takes hours."""
    client = _Slow()
    requests = ({"PutRequest": {"Item": {"n": {"N": str(i)}}}} for i in range(1_000))
    batch_write(client, TABLE, requests, workers=8)  # type: ignore[arg-type]
    assert sorted(client.written) == list(range(1_000))
    assert client.most > 1


def test_a_failing_worker_stops_the_others_and_its_error_is_raised() -> None:
    client = _Throttled(times=10**6)
    requests = [{"PutRequest": {}} for _ in range(500)]
    with pytest.raises(UnprocessedWrites, match="kept leaving writes"):
        batch_write(client, TABLE, requests, attempts=2, sleep=lambda _: None, workers=4)  # type: ignore[arg-type]
    assert len(client.calls) < 2 * 500 / 25  # not every batch was tried
