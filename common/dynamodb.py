"""DynamoDB's BatchWriteItem, in batches of 25, resending what DynamoDB leaves unprocessed.

One writer sends a batch, waits for its answer, then sends the next: about 25 items per
round trip, some 800 a second, so the nightly publish of 5 million rows would take close to
two hours. With `workers`, that many threads each keep a batch in flight on one client
(botocore clients are thread-safe; its connection pool must be as large, see
`client_config`); the table's write capacity, not the round trip, is then the limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING, Any, Final

from common.errors import UnprocessedWrites

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: BatchWriteItem's limit of requests per call.
BATCH_SIZE: Final = 25
#: How a setting names a DynamoDB table: `dynamodb://<table>`.
SCHEME: Final = "dynamodb://"


def table_name(uri: str) -> str | None:
    """The table a `dynamodb://<table>` URI names ("" where it names none), or None for a URI
    of another kind."""
    if not uri.startswith(SCHEME):
        return None
    return uri.removeprefix(SCHEME).strip("/")


def client_config(workers: int) -> Any:
    """botocore's client settings for `workers` threads: a connection each, standard retries."""
    from botocore.config import Config

    return Config(max_pool_connections=max(10, workers), retries={"mode": "standard"})


def batch_write(
    client: DynamoDBClient,
    table: str,
    requests: Iterable[Mapping[str, Any]],
    *,
    attempts: int = 8,
    sleep: Callable[[float], None] = time.sleep,
    workers: int = 1,
) -> None:
    """Send Put/DeleteRequests in batches of 25, with capped exponential backoff on leftovers,
    `workers` batches in flight at once.

    Raises `UnprocessedWrites`, naming the table, if DynamoDB still leaves some of a batch
    unprocessed after `attempts` calls; with several workers, the first failure stops the
    others taking new batches and is raised. Requests are consumed lazily, a batch per
    worker at a time, so a generator of millions of rows never sits in memory.
    """
    pending_requests: Iterator[Mapping[str, Any]] = iter(requests)
    if workers <= 1:
        while batch := list(islice(pending_requests, BATCH_SIZE)):
            _send(client, table, batch, attempts, sleep)
        return
    lock, failed = threading.Lock(), threading.Event()

    def worker() -> None:
        while not failed.is_set():
            with lock:
                batch = list(islice(pending_requests, BATCH_SIZE))
            if not batch:
                return
            try:
                _send(client, table, batch, attempts, sleep)
            except BaseException:
                failed.set()
                raise

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch-write") as pool:
        running = [pool.submit(worker) for _ in range(workers)]
    for done in running:
        done.result()  # the first failure, if any


def _send(
    client: DynamoDBClient,
    table: str,
    batch: list[Mapping[str, Any]],
    attempts: int,
    sleep: Callable[[float], None],
) -> None:
    """One batch, resent until DynamoDB processed all of it."""
    if batch:
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
