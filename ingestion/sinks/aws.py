"""Sinks that hand events to AWS: Kinesis Data Streams (PutRecords) and Firehose (PutRecordBatch).

Both APIs accept a batch and may refuse some of its records (throttling, internal errors)
while taking the rest. We resend only the refused records, with exponential backoff and full
jitter, and give up loudly with `DeliveryFailed`. Every record carries its event's `event_id`,
so a caller that retries a whole failed batch creates duplicates that the ETL drops.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ingestion.contract import Event
from ingestion.errors import DeliveryFailed

if TYPE_CHECKING:
    from mypy_boto3_firehose import FirehoseClient
    from mypy_boto3_kinesis import KinesisClient

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


def _record(event: Event) -> bytes:
    # A trailing newline, so that Firehose's concatenation of records is JSON lines.
    return (event.to_json_line() + "\n").encode()


class KinesisSink:
    """Puts events on a Kinesis stream, partitioned by user so each user's events stay in order."""

    def __init__(
        self,
        stream: str,
        client: KinesisClient | None = None,
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

    def _kinesis(self) -> KinesisClient:
        if self._client is None:
            import boto3

            self._client = boto3.client("kinesis", config=_CLIENT_CONFIG)
        return self._client

    def put(self, events: Sequence[Event]) -> None:
        """Send events in PutRecords calls of up to 500 records and 5 MiB."""
        records = [(_record(e), e.user_id.encode()) for e in events]
        target = f"Kinesis stream {self.stream}"
        stream_arg = (
            {"StreamARN": self.stream}
            if self.stream.startswith("arn:")
            else {"StreamName": self.stream}
        )
        for chunk in chunk_records(
            records, max_records=KINESIS_MAX_RECORDS, max_bytes=KINESIS_MAX_BYTES
        ):

            def send(batch: list[int]) -> list[str | None]:
                response = self._kinesis().put_records(
                    Records=[
                        {"Data": records[i][0], "PartitionKey": records[i][1].decode()}
                        for i in batch
                    ],
                    **stream_arg,  # type: ignore[arg-type]
                )
                return [r.get("ErrorCode") for r in response["Records"]]

            deliver(
                chunk,
                send,
                target=target,
                policy=self._policy,
                rng=self._rng,
                sleep=self._sleep,
            )

    def flush(self, force: bool = True) -> None:
        """Nothing is buffered here: a returned `put` is already on the stream."""

    def close(self) -> None:
        """Nothing to release; the client is shared and thread-safe."""


class FirehoseSink:
    """Puts events straight on a Firehose delivery stream (Direct PUT)."""

    def __init__(
        self,
        stream: str,
        client: FirehoseClient | None = None,
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

    def _firehose(self) -> FirehoseClient:
        if self._client is None:
            import boto3

            self._client = boto3.client("firehose", config=_CLIENT_CONFIG)
        return self._client

    def put(self, events: Sequence[Event]) -> None:
        """Send events in PutRecordBatch calls of up to 500 records and 4 MiB."""
        records = [(_record(e), b"") for e in events]
        for chunk in chunk_records(
            records, max_records=FIREHOSE_MAX_RECORDS, max_bytes=FIREHOSE_MAX_BYTES
        ):

            def send(batch: list[int]) -> list[str | None]:
                response = self._firehose().put_record_batch(
                    DeliveryStreamName=self.stream,
                    Records=[{"Data": records[i][0]} for i in batch],
                )
                return [r.get("ErrorCode") for r in response["RequestResponses"]]

            deliver(
                chunk,
                send,
                target=f"Firehose delivery stream {self.stream}",
                policy=self._policy,
                rng=self._rng,
                sleep=self._sleep,
            )

    def flush(self, force: bool = True) -> None:
        """Firehose buffers on its side; a returned `put` is already accepted by it."""

    def close(self) -> None:
        """Nothing to release."""
