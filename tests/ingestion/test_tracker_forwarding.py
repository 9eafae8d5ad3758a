"""Events reach the Personalize event tracker from where they enter: the API (after its sink
acknowledged them) and, on AWS, the Kinesis consumer. PutEvents is Stubber-driven (moto has
no Personalize Events); the rest is real: the API handler, the sink, DynamoDB under moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from ingestion.consumer import handler as consumer
from ingestion.tracker import EventTracker, TrackedSink
from serving.idempotency import LocalRequestContext
from serving.services import Services
from serving.settings import ServingSettings
from tests.conftest import create_history_table, load_event
from tests.serving_helpers import PublishedShop, handler_for, published_shop, services_for

TRACKING_ID = "tid-7"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> PublishedShop:
    return published_shop(tmp_path_factory.mktemp("shop"))


@pytest.fixture
def events_api(aws_env: None) -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("personalize-events")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _post(services: Services, body: dict[str, Any], key: str) -> dict[str, Any]:
    event = load_event("apigw_health.json")
    event["rawPath"] = "/v1/events"
    event["requestContext"]["http"].update(method="POST", path="/v1/events")
    event["headers"].update({"content-type": "application/json", "idempotency-key": key})
    event["body"] = json.dumps(body)
    answer: dict[str, Any] = handler_for(services)(event, LocalRequestContext())
    return answer


def test_an_event_posted_to_the_api_is_forwarded_once(
    shop: PublishedShop, tmp_path: Path, events_api: tuple[Any, Stubber]
) -> None:
    client, stub = events_api
    services = services_for(shop, tmp_path)
    services.sink = TrackedSink(services.sink, EventTracker(TRACKING_ID, client=client))
    stub.add_response(
        "put_events",
        {},
        {
            "trackingId": TRACKING_ID,
            "userId": "U1",
            "sessionId": "U1",
            "eventList": [{"eventId": ANY, "eventType": "purchase", "itemId": "I3", "sentAt": ANY}],
        },
    )
    body = {"userId": "U1", "itemId": "I3", "event_type": "purchase"}
    assert _post(services, body, "k-1")["statusCode"] == 202
    # A retry with the same key is answered from the idempotency record: not sent again.
    assert _post(services, body, "k-1")["statusCode"] == 202
    services.sink.close()


def test_a_tracker_outage_still_accepts_the_event(
    shop: PublishedShop, tmp_path: Path, events_api: tuple[Any, Stubber]
) -> None:
    client, stub = events_api
    services = services_for(shop, tmp_path)
    inner = services.sink
    services.sink = TrackedSink(inner, EventTracker(TRACKING_ID, client=client))
    stub.add_client_error("put_events", "ThrottlingException", http_status_code=400)
    body = {"userId": "U1", "itemId": "I4", "event_type": "view"}
    assert _post(services, body, "k-2")["statusCode"] == 202
    assert [e.item_id for e in services.recommender.history.recent("U1", 1)] == ["I4"]
    services.sink.close()


def test_the_api_refuses_a_tracker_the_kinesis_consumer_already_feeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECS_SINK", "kinesis")
    monkeypatch.setenv("RECS_KINESIS_STREAM", "recs-events")
    monkeypatch.setenv("RECS_HISTORY", "dynamodb://recs-history")
    monkeypatch.setenv("RECS_PERSONALIZE_TRACKING_ID", TRACKING_ID)
    with pytest.raises(Exception, match="set it on the consumer only"):
        ServingSettings.from_env()


@pytest.mark.aws
def test_the_kinesis_consumer_forwards_what_it_wrote(
    monkeypatch: pytest.MonkeyPatch, events_api: tuple[Any, Stubber]
) -> None:
    client, stub = events_api
    monkeypatch.setenv("RECS_HISTORY", "dynamodb://recs-history")
    monkeypatch.setenv("RECS_PERSONALIZE_TRACKING_ID", TRACKING_ID)
    monkeypatch.setattr(EventTracker, "_api", lambda _self: client)
    expected = {"trackingId": TRACKING_ID, "userId": "U1", "sessionId": ANY, "eventList": ANY}
    stub.add_response("put_events", {}, expected)
    stub.add_client_error("put_events", "InternalFailure", http_status_code=500)
    with mock_aws():
        create_history_table(boto3.client("dynamodb"), "recs-history")
        result = consumer(load_event("kinesis_history.json"), None)
    # Every event reached the history table; the tracker took U1's and refused U2's.
    assert result == {
        "written": 3,
        "invalid": 1,
        "batchItemFailures": [],
        "tracked": 2,
        "tracking_failed": 1,
    }
