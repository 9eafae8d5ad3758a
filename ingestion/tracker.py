"""Forwarding accepted events to an Amazon Personalize event tracker (PutEvents).

A Personalize campaign learns of a shopper's new events only through its event tracker;
without it, "recommended for you" from the campaign ignores everything since the last
nightly training. Training creates the tracker and records its tracking id in the version's
manifest (`tracking_id`); set it as `RECS_PERSONALIZE_TRACKING_ID` where events are
forwarded from, exactly once:

- on AWS with the Kinesis sink, the Kinesis consumer (`ingestion.consumer.handler`), which
  sees every event the producers and the API wrote to the stream;
- otherwise the API itself, after its sink has acknowledged the events.

PutEvents takes one user and session per call and at most 10 events, and refuses or accepts
a call whole. Calls are retried by botocore (standard mode: throttling and 5xx, exponential
backoff with jitter). A call that still fails is logged and counted, never raised: the events
are already durable in the lake, and the next training reads them from there. The tracker is
a freshness signal, not the record. But a tracker that refuses everything (a role without
PutEvents, a tracking id from another account) would leave the campaign blind for good, so
each refused event is also counted as the CloudWatch metric `recs/TrackerEventsFailed`
(embedded metric format, dimension `service`), which `infra/terraform/monitoring.tf` alarms on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Any, Final

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from common.contract import Event

if TYPE_CHECKING:
    from mypy_boto3_personalize_events import PersonalizeEventsClient
    from mypy_boto3_personalize_events.type_defs import EventTypeDef

    from ingestion.sinks import EventSink

logger = logging.getLogger(__name__)

#: PutEvents' own limit: events per call.
MAX_EVENTS: Final = 10
#: The CloudWatch metric of refused events (namespace `recs`), and the alarm's.
FAILED_METRIC: Final = "TrackerEventsFailed"
_CLIENT_CONFIG: Final = Config(retries={"mode": "standard", "max_attempts": 5})


@dataclass
class ForwardReport:
    """What one `forward` did."""

    sent: int = 0
    failed: int = 0
    calls: int = 0
    errors: list[str] = field(default_factory=list)


def tracker_calls(events: Sequence[Event]) -> Iterator[tuple[str, str, list[Event]]]:
    """(user, session, events) per PutEvents call: one user and session each, at most
    `MAX_EVENTS` events, oldest first. An event without a session id uses its user id, so a
    user's events stay one session, as Personalize's docs advise for known users."""
    keyed = sorted(events, key=lambda e: (e.user_id, e.session_id or e.user_id, e.ts))
    for (user, session), group in groupby(
        keyed, key=lambda e: (e.user_id, e.session_id or e.user_id)
    ):
        batch = list(group)
        for start in range(0, len(batch), MAX_EVENTS):
            yield user, session, batch[start : start + MAX_EVENTS]


def _event(event: Event) -> EventTypeDef:
    found: EventTypeDef = {
        "eventId": event.event_id,
        "eventType": event.event_type,
        "itemId": event.item_id,
        "sentAt": event.ts,
    }
    if event.recommendation_id is not None:
        # Personalize attributes the interaction to the recommendation it came from.
        found["recommendationId"] = event.recommendation_id
    return found


@dataclass
class EventTracker:
    """PutEvents to one tracker, in calls of at most ten events."""

    tracking_id: str
    client: PersonalizeEventsClient | None = field(default=None, repr=False)

    def _api(self) -> PersonalizeEventsClient:
        if self.client is None:
            import boto3

            self.client = boto3.client("personalize-events", config=_CLIENT_CONFIG)
        return self.client

    def forward(self, events: Sequence[Event]) -> ForwardReport:
        """Send the events; what fails is logged and counted, not raised."""
        report = ForwardReport()
        for user, session, batch in tracker_calls(events):
            report.calls += 1
            request: dict[str, Any] = {
                "trackingId": self.tracking_id,
                "userId": user,
                "sessionId": session,
                "eventList": [_event(e) for e in batch],
            }
            try:
                self._api().put_events(**request)
            except (ClientError, BotoCoreError) as exc:
                report.failed += len(batch)
                report.errors.append(str(exc))
                logger.warning(
                    "Personalize event tracker refused %d events of user %s: %s. They are in "
                    "the lake; the next training reads them",
                    len(batch),
                    user,
                    exc,
                )
            else:
                report.sent += len(batch)
        if report.failed:
            _count_refused(report.failed)
        return report


def _count_refused(events: int) -> None:
    """One embedded-metric line on stdout, which Lambda's log pipeline turns into the metric."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name=FAILED_METRIC, unit=MetricUnit.Count, value=events, namespace="recs"):
        pass


@dataclass
class TrackedSink:
    """A sink whose acknowledged events are also forwarded to an event tracker."""

    inner: EventSink
    tracker: EventTracker

    def put(self, events: Sequence[Event]) -> int | None:
        """Deliver to the sink first; only acknowledged events are forwarded."""
        new: int | None = self.inner.put(events)
        self.tracker.forward(events)
        return new

    def flush(self, force: bool = True) -> object:
        """The sink's flush."""
        return self.inner.flush(force)

    def close(self) -> None:
        """The sink's close."""
        self.inner.close()
