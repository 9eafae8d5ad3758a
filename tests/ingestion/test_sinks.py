"""One suite for every EventSink: local (SQLite log + raw zone), Kinesis and Firehose (moto).

Each adapter comes with a way to read back what reached its destination, so the same
assertions hold the fake-free local sink and the AWS sinks to one contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from common.contract import Event, parse_event
from common.lake import LocalLake, S3Lake
from ingestion.raw import RAW_EVENT_KEY, read_lines
from ingestion.sinks import EventLog, EventSink, FirehoseSink, KinesisSink, LocalSink


@dataclass
class Harness:
    sink: EventSink
    read_back: Callable[[], list[dict[str, Any]]]
    raw_keys: Callable[[], list[str]] | None = None
    # Kinesis keeps order per partition key and the local log per arrival; Firehose promises
    # no order across the objects it writes.
    ordered: bool = True


def _read_raw(lake: LocalLake | S3Lake) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for key in lake.list("raw/events/")
        for line in read_lines(lake.read_bytes(key))
    ]


@contextmanager
def _harness(kind: str, tmp_path: Path) -> Iterator[Harness]:
    if kind == "local":
        lake = LocalLake(tmp_path / "lake")
        sink = LocalSink(EventLog(tmp_path / "log.sqlite3"), lake)

        def read_local() -> list[dict[str, Any]]:
            sink.flush(force=True)
            return _read_raw(lake)

        yield Harness(sink, read_local, lambda: list(lake.list("raw/events/")))
        sink.close()
        return
    with mock_aws():
        if kind == "kinesis":
            kinesis = boto3.client("kinesis")
            kinesis.create_stream(StreamName="shop-events", ShardCount=2)

            def read_kinesis() -> list[dict[str, Any]]:
                records = []
                for shard in kinesis.list_shards(StreamName="shop-events")["Shards"]:
                    iterator = kinesis.get_shard_iterator(
                        StreamName="shop-events",
                        ShardId=shard["ShardId"],
                        ShardIteratorType="TRIM_HORIZON",
                    )["ShardIterator"]
                    while iterator:
                        page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                        records += page["Records"]
                        iterator = page["NextShardIterator"] if page["Records"] else None
                for record in records:
                    assert json.loads(record["Data"])["user_id"] == record["PartitionKey"]
                return [json.loads(r["Data"]) for r in records]

            yield Harness(KinesisSink("shop-events", client=kinesis), read_kinesis)
        else:
            s3 = boto3.client("s3")
            s3.create_bucket(Bucket="shop-lake")
            firehose = boto3.client("firehose")
            firehose.create_delivery_stream(
                DeliveryStreamName="shop-events",
                DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                    "BucketARN": "arn:aws:s3:::shop-lake",
                    "Prefix": "raw/events/",
                    "BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 300},
                },
            )
            lake = S3Lake("shop-lake", client=s3)
            yield Harness(
                FirehoseSink("shop-events", client=firehose),
                lambda: _read_raw(lake),
                lambda: list(lake.list("raw/events/")),
                ordered=False,
            )


@pytest.fixture(params=["local", "kinesis", "firehose"])
def harness(request: pytest.FixtureRequest, tmp_path: Path, aws_env: None) -> Iterator[Harness]:
    with _harness(request.param, tmp_path) as h:
        yield h


@pytest.fixture(params=["local", "firehose"])
def raw_harness(request: pytest.FixtureRequest, tmp_path: Path, aws_env: None) -> Iterator[Harness]:
    """The sinks that write objects: Kinesis's objects are written by Firehose, on AWS."""
    with _harness(request.param, tmp_path) as h:
        yield h


def _events(n: int, users: int = 7) -> list[Event]:
    start = datetime.now(UTC) - timedelta(hours=1)
    return [
        parse_event(
            {
                "userId": f"U{i % users}",
                "itemId": f"I{i}",
                "event_type": ("view", "add_to_cart", "purchase")[i % 3],
                "ts": (start + timedelta(seconds=i)).isoformat(),
                "price": 1.5,
                "quantity": 1,
            }
        )
        for i in range(n)
    ]


def test_one_event_arrives_as_its_lake_record(harness: Harness) -> None:
    event = _events(1)[0]
    harness.sink.put([event])
    assert harness.read_back() == [event.to_record()]


def test_a_large_batch_arrives_exactly_once_in_order_per_user(harness: Harness) -> None:
    events = _events(1_234)
    harness.sink.put(events[:700])
    harness.sink.put(events[700:])
    arrived = harness.read_back()
    assert sorted(e["event_id"] for e in arrived) == sorted(e.event_id for e in events)
    if not harness.ordered:
        return
    for user in {e.user_id for e in events}:
        sent = [e.event_id for e in events if e.user_id == user]
        assert [e["event_id"] for e in arrived if e["user_id"] == user] == sent


def test_an_empty_put_delivers_nothing(harness: Harness) -> None:
    harness.sink.put([])
    assert harness.read_back() == []


def test_objects_land_in_the_layout_the_etl_reads(raw_harness: Harness) -> None:
    harness = raw_harness
    assert harness.raw_keys is not None
    harness.sink.put(_events(10))
    harness.read_back()
    keys = harness.raw_keys()
    assert keys
    hour = datetime.now(UTC)
    for key in keys:
        match = RAW_EVENT_KEY.match(key)
        assert match, key
        # Firehose names the hour by arrival, not by the events' time.
        assert abs(int(match["hour"]) - hour.hour) in (0, 1, 23)


def test_flush_and_close_are_safe_to_repeat(harness: Harness) -> None:
    harness.sink.put(_events(3))
    harness.sink.flush()
    harness.sink.flush()
    assert len(harness.read_back()) == 3
