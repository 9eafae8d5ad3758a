"""Recent history per user, for realtime recommendations: written where events enter.

Locally the sink's event log answers `recent(user_id)` itself. On AWS the API puts events on
Kinesis, and a small consumer Lambda (`ingestion.consumer.handler`) writes each one to a
DynamoDB table keyed by user, newest first, with a TTL. Serving reads either through the same
`RecentHistory` protocol; `tests/ingestion/test_history.py` runs one suite against both.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from common.contract import Event, epoch_ms
from common.dynamodb import batch_write
from common.errors import UnprocessedWrites
from ingestion.errors import DeliveryFailed, HistoryUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


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
