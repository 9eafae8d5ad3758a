"""The Kinesis consumer Lambda: each event on the stream into the recent-history table, and,
with a tracking id, on to the Personalize event tracker.

Its own module, so that the history store (`ingestion.history`), which the local sink and
serving read, imports neither the sinks nor the tracker.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from common.contract import Event, parse_stored_event
from common.dynamodb import BATCH_SIZE
from common.errors import InvalidEvent, SettingsError
from ingestion.errors import DeliveryFailed
from ingestion.history import DynamoHistory
from ingestion.settings import HistorySettings

logger = logging.getLogger(__name__)


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
    if settings.history_table is None:
        raise SettingsError(
            "The Kinesis consumer fills a DynamoDB history table: set RECS_HISTORY to "
            "dynamodb://TABLE (Terraform output history)"
        )
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
