"""Partial failures of Kinesis and Firehose: only the refused records are sent again.

moto never refuses a record, so these use botocore's Stubber, which checks the exact
request of every call against what we expect.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from common.contract import Event, parse_event
from ingestion.errors import DeliveryFailed
from ingestion.sinks.aws import FirehoseSink, KinesisSink, RetryPolicy, chunk_records

TS = datetime(2025, 8, 16, 18, 30, tzinfo=UTC)


def _events(n: int) -> list[Event]:
    return [
        parse_event(
            {
                "userId": f"U{i}",
                "itemId": "I1",
                "event_type": "view",
                "ts": TS.isoformat(),
                "eventId": f"e{i}",
            }
        )
        for i in range(n)
    ]


def _data(event: Event) -> bytes:
    return (event.to_json_line() + "\n").encode()


def _kinesis_ok(n: int) -> dict[str, Any]:
    # botocore's model puts a minimum of 1 on FailedRecordCount, so a clean answer omits it.
    return {"Records": [{"SequenceNumber": "1", "ShardId": "s"}] * n}


@pytest.fixture
def sleeps() -> list[float]:
    return []


def _kinesis(sleeps: list[float], attempts: int = 4) -> tuple[KinesisSink, Stubber]:
    client = boto3.client(
        "kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    sink = KinesisSink(
        "shop-events",
        client=client,
        policy=RetryPolicy(attempts=attempts),
        rng=random.Random(1),
        sleep=sleeps.append,
    )
    return sink, Stubber(client)


def test_kinesis_resends_only_the_refused_records(sleeps: list[float]) -> None:
    sink, stub = _kinesis(sleeps)
    events = _events(3)
    records = [{"Data": _data(e), "PartitionKey": e.user_id} for e in events]
    stub.add_response(
        "put_records",
        {
            "FailedRecordCount": 2,
            "Records": [
                {
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": "slow down",
                },
                {"SequenceNumber": "1", "ShardId": "s"},
                {"ErrorCode": "InternalFailure", "ErrorMessage": "oops"},
            ],
        },
        {"StreamName": "shop-events", "Records": records},
    )
    stub.add_response(
        "put_records",
        _kinesis_ok(2),
        {"StreamName": "shop-events", "Records": [records[0], records[2]]},
    )
    with stub:
        sink.put(events)
    stub.assert_no_pending_responses()
    assert len(sleeps) == 1


def test_kinesis_gives_up_loudly_after_its_attempts(sleeps: list[float]) -> None:
    sink, stub = _kinesis(sleeps, attempts=3)
    events = _events(2)
    refused = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
    ok = {"SequenceNumber": "1", "ShardId": "s"}
    stub.add_response("put_records", {"FailedRecordCount": 1, "Records": [ok, refused]})
    stub.add_response("put_records", {"FailedRecordCount": 1, "Records": [refused]})
    stub.add_response("put_records", {"FailedRecordCount": 1, "Records": [refused]})
    with stub, pytest.raises(DeliveryFailed) as failed:
        sink.put(events)
    message = str(failed.value)
    assert "1 of 2 records were refused by Kinesis stream shop-events after 3 attempts" in message
    assert "ProvisionedThroughputExceededException x1" in message
    assert len(sleeps) == 2
    assert sleeps[1] <= RetryPolicy().base_delay_s * 2


def test_kinesis_call_errors_become_delivery_failed(sleeps: list[float]) -> None:
    sink, stub = _kinesis(sleeps)
    stub.add_client_error(
        "put_records", "ResourceNotFoundException", "Stream shop-events not found"
    )
    with stub, pytest.raises(DeliveryFailed, match="Stream shop-events not found"):
        sink.put(_events(1))


def test_kinesis_takes_a_stream_arn(sleeps: list[float]) -> None:
    client = boto3.client(
        "kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/shop-events"
    event = _events(1)[0]
    with Stubber(client) as stub:
        stub.add_response(
            "put_records",
            _kinesis_ok(1),
            {"StreamARN": arn, "Records": [{"Data": _data(event), "PartitionKey": "U0"}]},
        )
        KinesisSink(arn, client=client).put([event])
        stub.assert_no_pending_responses()


def test_kinesis_splits_calls_at_500_records(sleeps: list[float]) -> None:
    sink, stub = _kinesis(sleeps)
    events = _events(1001)
    for n in (500, 500, 1):
        stub.add_response("put_records", _kinesis_ok(n))
    with stub:
        sink.put(events)
    stub.assert_no_pending_responses()


def test_firehose_resends_only_the_refused_records(sleeps: list[float]) -> None:
    client = boto3.client(
        "firehose", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    sink = FirehoseSink("shop-events", client=client, rng=random.Random(1), sleep=sleeps.append)
    events = _events(3)
    records = [{"Data": _data(e)} for e in events]
    stub = Stubber(client)
    stub.add_response(
        "put_record_batch",
        {
            "FailedPutCount": 1,
            "RequestResponses": [
                {"RecordId": "a"},
                {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "busy"},
                {"RecordId": "c"},
            ],
        },
        {"DeliveryStreamName": "shop-events", "Records": records},
    )
    stub.add_response(
        "put_record_batch",
        {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "b"}]},
        {"DeliveryStreamName": "shop-events", "Records": [records[1]]},
    )
    with stub:
        sink.put(events)
    stub.assert_no_pending_responses()


def test_chunks_respect_both_count_and_size_limits() -> None:
    records = [(b"x" * 400, b"k")] * 10
    assert [len(c) for c in chunk_records(records, max_records=4, max_bytes=10_000)] == [4, 4, 2]
    assert [len(c) for c in chunk_records(records, max_records=500, max_bytes=1_000)] == [2] * 5
    assert list(chunk_records([], max_records=5, max_bytes=5)) == []


def test_backoff_is_capped_exponential_full_jitter() -> None:
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=1.0)
    rng = random.Random(7)
    delays = [policy.delay(attempt, rng) for attempt in range(10) for _ in range(50)]
    assert all(0 <= d <= 1.0 for d in delays)
    assert max(policy.delay(0, rng) for _ in range(50)) <= 0.1
    # The delays grow: each attempt's bound doubles (0.1, 0.2, 0.4, 0.8), then stays at the cap.
    means = [sum(policy.delay(attempt, rng) for _ in range(4000)) / 4000 for attempt in range(6)]
    for attempt in range(3):
        assert 1.7 < means[attempt + 1] / means[attempt] < 2.3, means
    assert 0.45 < means[4] < 0.55  # half the 1.0 cap: jitter is uniform below the bound
    assert abs(means[5] - means[4]) < 0.05, means
