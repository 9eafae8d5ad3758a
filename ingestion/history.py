"""Recent history per user, for realtime recommendations: written where events enter.

Locally the sink's event log answers `recent(user_id)` itself. On AWS the API puts events on
Kinesis, and a small consumer Lambda (`handler` below) writes each one to a DynamoDB table
keyed by user, newest first, with a TTL. Serving reads either through the same
`RecentHistory` protocol; `tests/integration/test_history.py` runs one suite against both.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from common.contract import Event, epoch_ms, parse_stored_event
from common.dynamodb import BATCH_SIZE, batch_write
from common.errors import InvalidEvent, UnprocessedWrites
from common.settings import RecsSettings
from ingestion.errors import DeliveryFailed, HistoryUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

#: How long the history table keeps an event (its TTL), like the local log's RECS_HISTORY_DAYS.
DEFAULT_KEEP_DAYS: Final = 30.0


@dataclass(frozen=True)
class RecentEvent:
    """One event from a user's recent history."""

    item_id: str
    event_type: str
    ts_ms: int


class RecentHistory(Protocol):
    """A user's newest events, newest first."""

    def recent(self, user_id: str, limit: int = 50) -> list[RecentEvent]:
        """Up to `limit` of the user's events, newest first."""
        ...


@dataclass
class DynamoHistory:
    """Recent events in one DynamoDB table: `user_id` (hash), `event` = ts#event_id (range).

    A redelivered event has the same key, so writing it again changes nothing.
    """

    table: str
    client: DynamoDBClient | None = field(default=None, repr=False)
    keep_days: float = DEFAULT_KEEP_DAYS

    def _db(self) -> DynamoDBClient:
        if self.client is None:
            import boto3

            self.client = boto3.client("dynamodb")
        return self.client

    def append(self, events: Sequence[Event]) -> int:
        """Write events; returns how many were sent."""
        expires = int(time.time() + self.keep_days * 86_400)
        try:
            self._put(events, expires)
        except UnprocessedWrites as exc:
            raise DeliveryFailed(str(exc)) from exc
        return len(events)

    def _put(self, events: Sequence[Event], expires: int) -> None:
        batch_write(
            self._db(),
            self.table,
            (
                {
                    "PutRequest": {
                        "Item": {
                            "user_id": {"S": e.user_id},
                            "event": {"S": f"{epoch_ms(e.ts):013d}#{e.event_id}"},
                            "item_id": {"S": e.item_id},
                            "event_type": {"S": e.event_type},
                            "ts_ms": {"N": str(epoch_ms(e.ts))},
                            "expires_at": {"N": str(expires)},
                        }
                    }
                }
                for e in events
            ),
        )

    def recent(self, user_id: str, limit: int = 50) -> list[RecentEvent]:
        """One Query, newest first; `HistoryUnavailable` names the table when it fails."""
        try:
            response = self._db().query(
                TableName=self.table,
                KeyConditionExpression="user_id = :u",
                ExpressionAttributeValues={":u": {"S": user_id}},
                ScanIndexForward=False,
                Limit=limit,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise HistoryUnavailable(
                    f"The recent-history table {self.table} does not exist: create it "
                    "(infra/terraform declares it) or point RECS_HISTORY at the one the "
                    "Kinesis consumer fills"
                ) from exc
            raise HistoryUnavailable(
                f"The recent-history table {self.table} is unavailable ({code}); retry shortly"
            ) from exc
        except BotoCoreError as exc:
            raise HistoryUnavailable(
                f"The recent-history table {self.table} is unreachable ({exc}); retry shortly"
            ) from exc
        return [
            RecentEvent(i["item_id"]["S"], i["event_type"]["S"], int(i["ts_ms"]["N"]))
            for i in response.get("Items", [])
        ]


def kinesis_events(records: Iterable[Mapping[str, Any]]) -> tuple[list[Event], int]:
    """The events in a Kinesis batch, and how many records were not valid events.

    An invalid record is logged and skipped: the ETL quarantines it with its reason, and
    retrying the batch would not make it valid.
    """
    events: list[Event] = []
    invalid = 0
    for _, found, bad in _record_events(records):
        events.extend(found)
        invalid += bad
    return events, invalid


def _record_events(
    records: Iterable[Mapping[str, Any]],
) -> Iterator[tuple[str, list[Event], int]]:
    """Per Kinesis record, in stream order: its sequence number, its valid events, and how
    many of its lines were not valid events."""
    for record in records:
        sequence = str(record["kinesis"].get("sequenceNumber", ""))
        data = base64.b64decode(record["kinesis"]["data"])
        found, invalid = [], 0
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                found.append(parse_stored_event(line))
            except InvalidEvent as exc:
                invalid += 1
                logger.warning("skipping invalid record %s: %s", sequence, exc)
        yield sequence, found, invalid


class HistorySettings(RecsSettings):
    """The Kinesis consumer's one setting: the table it fills."""

    history_table: str = Field(
        min_length=1, description="DynamoDB table of recent history the Kinesis consumer fills"
    )
    personalize_tracking_id: str | None = Field(
        None,
        description="Also forward each event to this Personalize event tracker (PutEvents)",
    )


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Kinesis consumer Lambda: each event on the stream into the history table.

    Its event source mapping reports partial batch failures (`ReportBatchItemFailures`):
    events are written in stream order, in DynamoDB's batches of 25, and when a batch still
    fails after its retries, the answer names the first record not fully written. Lambda then
    retries from that record on, not the whole batch; rewriting an event is idempotent. With
    a tracking id, the written events then go to the Personalize event tracker too; a
    refused call is logged and counted, not retried through the stream (`ingestion.tracker`).
    """
    settings = HistorySettings.from_env()
    history = DynamoHistory(settings.history_table)
    invalid = 0

    def in_order() -> Iterator[tuple[str, Event]]:
        nonlocal invalid
        for sequence, found, bad in _record_events(event.get("Records", [])):
            invalid += bad
            yield from ((sequence, one) for one in found)

    written: list[Event] = []
    failed: str | None = None
    pending = in_order()
    while chunk := list(islice(pending, BATCH_SIZE)):
        try:
            history.append([e for _, e in chunk])
        except (DeliveryFailed, ClientError, BotoCoreError) as exc:
            logger.warning("history table %s refused a batch: %s", settings.history_table, exc)
            failed = chunk[0][0]
            break
        written.extend(e for _, e in chunk)
    answer: dict[str, Any] = {
        "written": len(written),
        "invalid": invalid,
        "batchItemFailures": [] if failed is None else [{"itemIdentifier": failed}],
    }
    if settings.personalize_tracking_id and written:
        from ingestion.tracker import EventTracker

        report = EventTracker(settings.personalize_tracking_id).forward(written)
        answer |= {"tracked": report.sent, "tracking_failed": report.failed}
    return answer
