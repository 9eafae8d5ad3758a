"""DynamoDB's BatchWriteItem, in batches of 25, resending what DynamoDB leaves unprocessed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any, Final

from common.errors import UnprocessedWrites

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: BatchWriteItem's limit of requests per call.
BATCH_SIZE: Final = 25


def batch_write(
    client: DynamoDBClient,
    table: str,
    requests: Iterable[Mapping[str, Any]],
    *,
    attempts: int = 8,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send Put/DeleteRequests in batches of 25, with capped exponential backoff on leftovers.

    Raises `UnprocessedWrites`, naming the table, if DynamoDB still leaves some of a batch
    unprocessed after `attempts` calls. Requests are consumed lazily, so a generator of
    millions of rows never sits in memory.
    """
    pending_requests: Iterator[Mapping[str, Any]] = iter(requests)
    while batch := list(islice(pending_requests, BATCH_SIZE)):
        pending: Any = {table: batch}
        for attempt in range(attempts):
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems", {})
            if not pending:
                break
            sleep(min(2.0, 0.05 * 2**attempt))
        else:
            raise UnprocessedWrites(
                f"DynamoDB table {table} kept leaving writes unprocessed after {attempts} "
                "attempts; retry"
            )
