"""The online store: published recommendations the API reads. SQLite here, DynamoDB on AWS.

A version is written in full first, then one pointer flips to it. Readers ask for a row of a
named version: the API reads rows of the version its loaded model is, so one answer never
labels one version's items with another's name, and a version stays readable until `recs
publish` drops it, two publishes later.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from common.dynamodb import batch_write, client_config
from common.errors import UnprocessedWrites
from common.sqlite import ThreadConnections
from serving.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: A user's and an item's recommendations, and a user's trained history (`profile`, for an
#: API that loads a version without its users: `training.published.profile_row`).
KINDS: Final = ("user", "item", "profile")
_POINTER: Final = {"pk": {"S": "_pointer"}, "sk": {"S": "live"}}
Row = tuple[str, list[str], list[float]]


class OnlineStore(Protocol):
    """Where serving finds each user's and each item's published recommendations."""

    def write_version(self, version: str, kind: str, rows: Iterable[Row]) -> int:
        """Write one kind of rows of a version (not yet visible); return how many."""
        ...

    def activate(self, version: str) -> None:
        """Flip the pointer: from now on readers see this version."""
        ...

    def active_version(self) -> str | None:
        """The version readers see, if any was activated."""
        ...

    def recommendations(
        self, kind: str, key: str, version: str
    ) -> tuple[list[str], list[float]] | None:
        """A version's items and scores for a user or an item, if it has any."""
        ...

    def drop_version(self, version: str, keys: Iterable[tuple[str, str]]) -> None:
        """Delete an old version's rows, given their (kind, key) pairs."""
        ...


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")


class SQLiteStore:
    """The store in one SQLite file (WAL), safe to read from many threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # NORMAL: a publish lost to a power cut is simply run again.
        self._connections = ThreadConnections(path, ("synchronous=NORMAL",))
        self._connections.get().executescript(
            """
            CREATE TABLE IF NOT EXISTS recommendations (
                version TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
                items TEXT NOT NULL, scores TEXT NOT NULL,
                PRIMARY KEY (version, kind, key)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS pointer (
                name TEXT PRIMARY KEY, version TEXT NOT NULL, activated_at REAL NOT NULL
            );
            """
        )

    def _connect(self) -> sqlite3.Connection:
        return self._connections.get()

    def write_version(self, version: str, kind: str, rows: Iterable[Row]) -> int:
        """All rows in one transaction."""
        _check_kind(kind)
        count = 0
        with self._connections.transaction("DEFERRED") as con:
            for key, items, scores in rows:
                con.execute(
                    "INSERT OR REPLACE INTO recommendations VALUES (?, ?, ?, ?, ?)",
                    (version, kind, key, json.dumps(items), json.dumps(scores)),
                )
                count += 1
        return count

    def activate(self, version: str) -> None:
        """One row update: the flip."""
        self._connect().execute(
            "INSERT INTO pointer VALUES ('live', ?, ?) ON CONFLICT(name) DO UPDATE "
            "SET version = excluded.version, activated_at = excluded.activated_at",
            (version, time.time()),
        )

    def active_version(self) -> str | None:
        """The live pointer."""
        row = self._connect().execute("SELECT version FROM pointer WHERE name = 'live'").fetchone()
        return None if row is None else str(row[0])

    def recommendations(
        self, kind: str, key: str, version: str
    ) -> tuple[list[str], list[float]] | None:
        """One primary-key lookup."""
        row = (
            self._connect()
            .execute(
                "SELECT items, scores FROM recommendations "
                "WHERE version = ? AND kind = ? AND key = ?",
                (version, kind, key),
            )
            .fetchone()
        )
        return None if row is None else (json.loads(row[0]), json.loads(row[1]))

    def drop_version(self, version: str, keys: Iterable[tuple[str, str]]) -> None:
        """Every row of the version goes, whatever the keys."""
        self._connect().execute("DELETE FROM recommendations WHERE version = ?", (version,))


@dataclass
class DynamoStore:
    """The store in one DynamoDB table: `pk` = kind#key, `sk` = version; the pointer is one item."""

    table: str
    client: DynamoDBClient | None = field(default=None, repr=False)
    #: Batches a publish keeps in flight (`common.dynamodb`): 5 million rows take about
    #: 16 times less than one after another, until the table's write capacity binds.
    workers: int = 16

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """DynamoDB's refusals as StoreError, naming the table and what to check."""
        from botocore.exceptions import ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise StoreError(
                f"DynamoDB table {self.table}: {error.get('Code')}: {error.get('Message')}. "
                "Check RECS_STORE and that the table exists (infra/terraform/store.tf)"
            ) from exc

    def _db(self) -> DynamoDBClient:
        if self.client is None:
            import boto3

            self.client = boto3.client("dynamodb", config=client_config(self.workers))
        return self.client

    def _write(self, requests: Iterable[Mapping[str, Any]]) -> None:
        try:
            batch_write(self._db(), self.table, requests, workers=self.workers)
        except UnprocessedWrites as exc:
            raise StoreError(f"{exc} the publish") from exc

    def write_version(self, version: str, kind: str, rows: Iterable[Row]) -> int:
        """BatchWriteItem in 25s, `workers` at once, resending what DynamoDB leaves
        unprocessed."""
        _check_kind(kind)
        count = 0

        def requests() -> Iterator[dict[str, Any]]:
            nonlocal count
            for key, items, scores in rows:
                count += 1
                yield {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": f"{kind}#{key}"},
                            "sk": {"S": version},
                            "items": {"L": [{"S": i} for i in items]},
                            "scores": {"L": [{"N": str(Decimal(repr(s)))} for s in scores]},
                        }
                    }
                }

        with self._errors():
            self._write(requests())
        return count

    def activate(self, version: str) -> None:
        """One PutItem: the flip."""
        with self._errors():
            self._db().put_item(
                TableName=self.table,
                Item={
                    **_POINTER,
                    "version": {"S": version},
                    "activated_at": {"N": str(time.time())},
                },
            )

    def active_version(self) -> str | None:
        """The pointer item, read consistently."""
        with self._errors():
            item = self._db().get_item(TableName=self.table, Key=_POINTER, ConsistentRead=True)
        found = item.get("Item")
        return None if found is None else found["version"]["S"]

    def recommendations(
        self, kind: str, key: str, version: str
    ) -> tuple[list[str], list[float]] | None:
        """One GetItem."""
        item = (
            self._db()
            .get_item(
                TableName=self.table, Key={"pk": {"S": f"{kind}#{key}"}, "sk": {"S": version}}
            )
            .get("Item")
        )
        if item is None:
            return None
        return [i["S"] for i in item["items"]["L"]], [float(s["N"]) for s in item["scores"]["L"]]

    def drop_version(self, version: str, keys: Iterable[tuple[str, str]]) -> None:
        """DeleteRequests for the version's rows."""
        with self._errors():
            self._write(
                {"DeleteRequest": {"Key": {"pk": {"S": f"{kind}#{key}"}, "sk": {"S": version}}}}
                for kind, key in keys
            )


DEFAULT_STORE: Final = "./var/online-store.sqlite3"


def open_store(uri: str) -> SQLiteStore | DynamoStore:
    """A store from its URI: a SQLite file path, or `dynamodb://table`."""
    if uri.startswith("dynamodb://"):
        table = uri.removeprefix("dynamodb://").strip("/")
        if not table:
            raise ValueError(f"RECS_STORE {uri!r} names no table; use dynamodb://table-name")
        return DynamoStore(table)
    if "://" in uri:
        raise ValueError(f"RECS_STORE {uri!r}: use a file path or dynamodb://table-name")
    return SQLiteStore(Path(uri).expanduser())
