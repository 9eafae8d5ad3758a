"""Forwarding to a Personalize event tracker: PutEvents' exact requests (botocore's Stubber;
moto has no Personalize Events), its limits, and failures that never lose an event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from common.contract import Event
from ingestion.tracker import MAX_EVENTS, EventTracker, TrackedSink, tracker_calls

T0 = datetime(2026, 11, 2, 2, tzinfo=UTC)


def _event(n: int, user: str = "U1", **more: Any) -> Event:
    return Event.model_validate(
        {
            "eventId": f"e{n}",
            "userId": user,
            "itemId": f"I{n}",
            "event_type": "view",
            "ts": (T0 + timedelta(seconds=n)).isoformat(),
            **more,
        }
    )


@pytest.fixture
def stubbed(aws_env: None) -> Iterator[tuple[EventTracker, Stubber]]:
    client = boto3.client("personalize-events")
    with Stubber(client) as stub:
        yield EventTracker("tid-1", client=client), stub
        stub.assert_no_pending_responses()


def test_each_call_is_one_user_and_session_and_at_most_ten_events_oldest_first() -> None:
    events = [_event(n) for n in reversed(range(12))] + [
        _event(20, user="U2", sessionId="s-9"),
        _event(21, user="U2"),
    ]
    calls = [(u, s, [e.event_id for e in batch]) for u, s, batch in tracker_calls(events)]
    assert calls == [
        ("U1", "U1", [f"e{n}" for n in range(MAX_EVENTS)]),
        ("U1", "U1", ["e10", "e11"]),
        ("U2", "U2", ["e21"]),
        ("U2", "s-9", ["e20"]),
    ]


def test_events_are_put_with_their_ids_types_items_and_times(stubbed: Any) -> None:
    tracker, stub = stubbed
    stub.add_response(
        "put_events",
        {},
        {
            "trackingId": "tid-1",
            "userId": "U1",
            "sessionId": "U1",
            "eventList": [
                {"eventId": f"e{n}", "eventType": "view", "itemId": f"I{n}", "sentAt": at}
                for n, at in [(1, T0 + timedelta(seconds=1)), (2, T0 + timedelta(seconds=2))]
            ],
        },
    )
    report = tracker.forward([_event(2), _event(1)])
    assert (report.sent, report.failed, report.calls) == (2, 0, 1)


def test_a_click_on_a_recommendation_carries_its_recommendation_id(stubbed: Any) -> None:
    tracker, stub = stubbed
    at = T0 + timedelta(seconds=1)
    sent = {"eventId": "e1", "eventType": "view", "itemId": "I1", "sentAt": at}
    stub.add_response(
        "put_events",
        {},
        {
            "trackingId": "tid-1",
            "userId": "U1",
            "sessionId": "U1",
            "eventList": [{**sent, "recommendationId": "rid-7"}],
        },
    )
    assert tracker.forward([_event(1, recommendationId="rid-7")]).sent == 1


def test_a_refused_call_is_counted_and_logged_and_the_rest_still_go(
    stubbed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    tracker, stub = stubbed
    stub.add_client_error(
        "put_events", service_error_code="ThrottlingException", http_status_code=400
    )
    stub.add_response("put_events", {})
    report = tracker.forward([_event(1), _event(2, user="U2")])
    assert (report.sent, report.failed, report.calls) == (1, 1, 2)
    assert "ThrottlingException" in report.errors[0]
    assert "They are in the lake" in caplog.text


def test_refused_events_are_a_cloudwatch_metric_an_alarm_watches(
    stubbed: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A denied PutEvents (the consumer's role, say) must page someone, not only log: the
    count goes out as an embedded metric that infra/terraform/monitoring.tf alarms on."""
    import json

    from ingestion.tracker import FAILED_METRIC

    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "recs-history-consumer")
    tracker, stub = stubbed
    stub.add_client_error(
        "put_events", service_error_code="AccessDeniedException", http_status_code=400
    )
    stub.add_response("put_events", {})
    tracker.forward([_event(1), _event(2), _event(3, user="U2")])
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert len(blobs) == 1
    (emitted,) = blobs
    directive = emitted["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "recs"
    assert [m["Name"] for m in directive["Metrics"]] == [FAILED_METRIC]
    assert emitted[FAILED_METRIC] == [2.0]
    assert emitted["service"] == "recs-history-consumer"
    # Nothing refused, nothing emitted: the alarm's "missing data" is then fine.
    stub.add_response("put_events", {})
    tracker.forward([_event(4)])
    assert "_aws" not in capsys.readouterr().out


class _Sink:
    def __init__(self, fail: bool = False) -> None:
        self.fail, self.got = fail, []  # type: list[Event]

    def put(self, events: Any) -> int:
        if self.fail:
            raise RuntimeError("sink down")
        self.got.extend(events)
        return len(events)

    def flush(self, force: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_sink_acknowledges_first_and_a_refused_event_is_never_forwarded(stubbed: Any) -> None:
    tracker, stub = stubbed
    stub.add_response("put_events", {})
    sink = _Sink()
    tracked = TrackedSink(sink, tracker)
    assert tracked.put([_event(1)]) == 1
    assert [e.event_id for e in sink.got] == ["e1"]
    with pytest.raises(RuntimeError, match="sink down"):
        TrackedSink(_Sink(fail=True), tracker).put([_event(2)])  # no put_events queued


def test_a_tracker_outage_never_fails_an_accepted_event(stubbed: Any) -> None:
    tracker, stub = stubbed
    stub.add_client_error("put_events", service_error_code="InternalFailure", http_status_code=500)
    sink = _Sink()
    assert TrackedSink(sink, tracker).put([_event(1)]) == 1
    assert len(sink.got) == 1
