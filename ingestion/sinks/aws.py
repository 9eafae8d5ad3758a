"""Sinks that hand events to AWS: Kinesis Data Streams (PutRecords) and Firehose (PutRecordBatch).

Both APIs accept a batch and may refuse some of its records (throttling, internal errors)
while taking the rest. We resend only the refused records, with exponential backoff and full
jitter, and give up loudly with `DeliveryFailed`. Every record carries its event's `event_id`,
so a caller that retries a whole failed batch creates duplicates that the ETL drops.
"""

from __future__ import annotations

import functools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, Generic, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from common.contract import Event
from ingestion.errors import DeliveryFailed

if TYPE_CHECKING:
    from mypy_boto3_firehose import FirehoseClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import PutRecordsRequestEntryTypeDef

Client = TypeVar("Client")

#: Service limits of one call (Kinesis PutRecords; Firehose PutRecordBatch).
KINESIS_MAX_RECORDS: Final = 500
KINESIS_MAX_BYTES: Final = 5 * 1024 * 1024
FIREHOSE_MAX_RECORDS: Final = 500
FIREHOSE_MAX_BYTES: Final = 4 * 1024 * 1024

# botocore retries whole calls that fail (throttled, 5xx); we retry the records a call refused.
_CLIENT_CONFIG: Final = Config(retries={"mode": "standard", "max_attempts": 5})

#: Sends the records at some indices in one call; returns each one's error code, or None
#: where the record was accepted.
SendChunk = Callable[[list[int]], list[str | None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on records a service refused."""

    attempts: int = 6
    base_delay_s: float = 0.05
    max_delay_s: float = 5.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for the retry after `attempt` (0-based)."""
        return rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


def chunk_records(
    records: Sequence[tuple[bytes, bytes]], *, max_records: int, max_bytes: int
) -> Iterator[list[int]]:
    """Indices of records in chunks that respect a call's count and size limits.

    Each record is (data, partition key); a key counts toward the size as the services do.
    """
    chunk: list[int] = []
    size = 0
    for index, (data, key) in enumerate(records):
        record_size = len(data) + len(key)
        if chunk and (len(chunk) == max_records or size + record_size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(index)
        size += record_size
    if chunk:
        yield chunk


def deliver(
    indices: list[int],
    send: SendChunk,
    *,
    target: str,
    policy: RetryPolicy,
    rng: random.Random,
    sleep: Callable[[float], None],
) -> None:
    """Send records, resending only the refused ones, until all are taken or tries run out."""
    remaining = list(indices)
    codes: Counter[str] = Counter()
    for attempt in range(policy.attempts):
        try:
            results = send(remaining)
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryFailed(
                f"{target} refused a call of {len(remaining)} records: {exc}. Nothing in this "
                "call is acknowledged; retry the batch (duplicates are dropped by event_id)"
            ) from exc
        if len(results) != len(remaining):
            raise DeliveryFailed(
                f"{target} answered {len(results)} results for {len(remaining)} records"
            )
        codes = Counter(code for code in results if code)
        remaining = [i for i, code in zip(remaining, results, strict=True) if code]
        if not remaining:
            return
        if attempt + 1 < policy.attempts:
            sleep(policy.delay(attempt, rng))
    summary = ", ".join(f"{code} x{n}" for code, n in codes.most_common())
    raise DeliveryFailed(
        f"{len(remaining)} of {len(indices)} records were refused by {target} after "
        f"{policy.attempts} attempts ({summary}). They are not acknowledged; retry the batch "
        "(duplicates are dropped by event_id) or raise the stream's capacity"
    )


class _RetryingSink(Generic[Client]):
    """What both AWS sinks share: chunking to the call's limits, and resending refused records."""

    max_records: ClassVar[int]
    max_bytes: ClassVar[int]
    label: ClassVar[str]

    def __init__(
        self,
        stream: str,
        client: Client | None = None,
        *,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stream = stream
        self._client = client
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        self._sleep = sleep

    def _api(self) -> Client:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Client:
        raise NotImplementedError

    def _partition_key(self, event: Event) -> bytes:
        return b""

    def _send(self, records: list[tuple[bytes, bytes]], batch: list[int]) -> list[str | None]:
        """One call with the records at `batch`; each record's error code, or None if taken."""
        raise NotImplementedError

    def put(self, events: Sequence[Event]) -> None:
        """Send events in calls that respect the service's record and size limits.

        The stream cannot say whether an id was seen before: the ETL keeps the first copy.
        """
        # A trailing newline, so that Firehose's concatenation of records is JSON lines.
        records = [((e.to_json_line() + "\n").encode(), self._partition_key(e)) for e in events]
        for chunk in chunk_records(records, max_records=self.max_records, max_bytes=self.max_bytes):
            deliver(
                chunk,
                functools.partial(self._send, records),
                target=f"{self.label} {self.stream}",
                policy=self._policy,
                rng=self._rng,
                sleep=self._sleep,
            )

    def flush(self, force: bool = True) -> None:
        """Nothing is buffered on our side: a returned `put` was accepted by the service."""

    def close(self) -> None:
        """Nothing to release; boto3 clients are thread-safe and shared."""


class KinesisSink(_RetryingSink["KinesisClient"]):
    """Puts events on a Kinesis stream, partitioned by user so each user's events stay in order.

    PutRecords takes up to 500 records and 5 MiB a call. `stream` is a name or an ARN.
    """

    max_records = KINESIS_MAX_RECORDS
    max_bytes = KINESIS_MAX_BYTES
    label = "Kinesis stream"

    def _new_client(self) -> KinesisClient:
        import boto3

        return boto3.client("kinesis", config=_CLIENT_CONFIG)

    def _partition_key(self, event: Event) -> bytes:
        return event.user_id.encode()

    def _send(self, records: list[tuple[bytes, bytes]], batch: list[int]) -> list[str | None]:
        entries: list[PutRecordsRequestEntryTypeDef] = [
            {"Data": records[i][0], "PartitionKey": records[i][1].decode()} for i in batch
        ]
        if self.stream.startswith("arn:"):
            response = self._api().put_records(Records=entries, StreamARN=self.stream)
        else:
            response = self._api().put_records(Records=entries, StreamName=self.stream)
        return [r.get("ErrorCode") for r in response["Records"]]


class FirehoseSink(_RetryingSink["FirehoseClient"]):
    """Puts events straight on a Firehose delivery stream (Direct PUT).

    PutRecordBatch takes up to 500 records and 4 MiB a call.
    """

    max_records = FIREHOSE_MAX_RECORDS
    max_bytes = FIREHOSE_MAX_BYTES
    label = "Firehose delivery stream"

    def _new_client(self) -> FirehoseClient:
        import boto3

        return boto3.client("firehose", config=_CLIENT_CONFIG)

    def _send(self, records: list[tuple[bytes, bytes]], batch: list[int]) -> list[str | None]:
        response = self._api().put_record_batch(
            DeliveryStreamName=self.stream, Records=[{"Data": records[i][0]} for i in batch]
        )
        return [r.get("ErrorCode") for r in response["RequestResponses"]]
