"""The online store: published recommendations the API reads. SQLite here, DynamoDB on AWS.

A version is written in full first, then one pointer flips to it. Readers ask for a row of a
named version: the API reads rows of the version its loaded model is, so one answer never
labels one version's items with another's name, and a version stays readable until `recs
publish` drops it, two publishes later.

On DynamoDB a version's rows go one of two ways (`RECS_STORE_PUBLISH`):
- `rows`: BatchWriteItem into the store's table, beside the pointer;
- `import` (a table swap, `DynamoImportStore`): the rows are staged in the S3 lake as gzipped
  DynamoDB JSON, and DynamoDB's ImportTable makes a new table of them, `<table>.<version>`;
  the pointer then names that table. An import uses no write capacity, where a new
  on-demand table takes 4,000 writes a second: a big shop's 10 million rows would take 42
  minutes of BatchWriteItem, past a Lambda's 15. Dropping an old version deletes its table
  instead of writing 10 million deletes.
Readers follow the pointer's `table` either way (absent: the store's own table).
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson

from common.dynamodb import batch_write, client_config, table_name
from common.errors import SettingsError, UnprocessedWrites
from common.lake import Lake, S3Lake
from common.layout import STORE_IMPORT
from common.sqlite import ThreadConnections
from serving.errors import ServingError, StoreError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: A user's and an item's recommendations, and a user's trained history (`profile`, for an
#: API that loads a version without its users: `training.profiles.profile_row`).
KINDS: Final = ("user", "item", "profile")
_POINTER: Final = {"pk": {"S": "_pointer"}, "sk": {"S": "live"}}
_EXPERIMENT: Final = {"pk": {"S": "_pointer"}, "sk": {"S": "experiment"}}
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

    def prepared(self, version: str) -> dict[str, int] | None:
        """Rows per kind of a version a previous publish wrote in full, with only the flip
        left (a table swap whose import was still running); None to write them."""
        ...

    def ready(self, version: str) -> None:
        """Make a written version readable without flipping the pointer (a table swap
        imports its table), for an experiment's candidate."""
        ...

    def experiment(self) -> dict[str, Any] | None:
        """The running experiment (`serving.experiment.Experiment.body`), if any."""
        ...

    def set_experiment(self, body: Mapping[str, Any] | None) -> None:
        """Start splitting readers by this experiment, or (None) stop."""
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
            CREATE TABLE IF NOT EXISTS experiment (
                slot TEXT PRIMARY KEY CHECK (slot = 'running'), body TEXT NOT NULL
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
        return None if row is None else (orjson.loads(row[0]), orjson.loads(row[1]))

    def drop_version(self, version: str, keys: Iterable[tuple[str, str]]) -> None:
        """Every row of the version goes, whatever the keys."""
        self._connect().execute("DELETE FROM recommendations WHERE version = ?", (version,))

    def prepared(self, version: str) -> dict[str, int] | None:
        """A publish here is one transaction per kind: always written again."""
        return None

    def ready(self, version: str) -> None:
        """Written rows are readable at once."""

    def experiment(self) -> dict[str, Any] | None:
        """The one `experiment` row."""
        row = self._connect().execute("SELECT body FROM experiment").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def set_experiment(self, body: Mapping[str, Any] | None) -> None:
        """Replace or delete the one row."""
        con = self._connect()
        if body is None:
            con.execute("DELETE FROM experiment")
        else:
            con.execute(
                "INSERT OR REPLACE INTO experiment VALUES ('running', ?)", (json.dumps(body),)
            )


@dataclass
class DynamoStore:
    """The store in one DynamoDB table: `pk` = kind#key, `sk` = version; the pointer is one item."""

    table: str
    client: DynamoDBClient | None = field(default=None, repr=False)
    #: Batches a publish keeps in flight (`common.dynamodb`): 5 million rows take about
    #: 16 times less than one after another, until the table's write capacity binds.
    workers: int = 16
    #: The table each version's rows are in, as the pointer said (a table swap's own).
    _tables: dict[str, str] = field(default_factory=dict, repr=False)

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
                yield {"PutRequest": {"Item": self._item(kind, key, version, items, scores)}}

        with self._errors():
            self._write(requests())
        return count

    def activate(self, version: str) -> None:
        """One PutItem: the flip."""
        self._flip(version)

    def _flip(self, version: str, table: str | None = None) -> None:
        """Point readers at a version, and at its own table when it has one."""
        item: dict[str, Any] = {
            **_POINTER,
            "version": {"S": version},
            "activated_at": {"N": str(time.time())},
        }
        if table is not None:
            item["table"] = {"S": table}
        with self._errors():
            self._db().put_item(TableName=self.table, Item=item)

    def active_version(self) -> str | None:
        """The pointer item, read consistently; it names the version's table, if its own."""
        with self._errors():
            item = self._db().get_item(TableName=self.table, Key=_POINTER, ConsistentRead=True)
        found = item.get("Item")
        if found is None:
            return None
        version = found["version"]["S"]
        self._tables[version] = found.get("table", {}).get("S", self.table)
        return version

    def recommendations(
        self, kind: str, key: str, version: str
    ) -> tuple[list[str], list[float]] | None:
        """One GetItem, in the table the pointer named for the version. A version's own table
        that is gone (an experiment's candidate dropped by `stop` before this worker saw
        the stop) holds no rows: the answer is scored instead of failing."""
        table = self._tables.get(version, self.table)
        db = self._db()
        key_of = {"pk": {"S": f"{kind}#{key}"}, "sk": {"S": version}}
        try:
            item = db.get_item(TableName=table, Key=key_of).get("Item")
        except db.exceptions.ResourceNotFoundException:
            if table == self.table:
                raise
            return None
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

    def prepared(self, version: str) -> dict[str, int] | None:
        """BatchWriteItem is simply sent again."""
        return None

    def ready(self, version: str) -> None:
        """Rows beside the pointer are readable at once."""

    def experiment(self) -> dict[str, Any] | None:
        """The experiment item, read consistently; it names its candidate's table."""
        with self._errors():
            item = self._db().get_item(TableName=self.table, Key=_EXPERIMENT, ConsistentRead=True)
        found = item.get("Item")
        if found is None:
            return None
        body: dict[str, Any] = json.loads(found["body"]["S"])
        self._tables[str(body.get("candidate"))] = found.get("table", {}).get("S", self.table)
        return body

    def set_experiment(self, body: Mapping[str, Any] | None) -> None:
        """One PutItem (naming the candidate's table) or DeleteItem."""
        with self._errors():
            if body is None:
                self._db().delete_item(TableName=self.table, Key=_EXPERIMENT)
                return
            table = self._tables.get(str(body.get("candidate")), self.table)
            self._db().put_item(
                TableName=self.table,
                Item={
                    **_EXPERIMENT,
                    "body": {"S": json.dumps(dict(body))},
                    "table": {"S": table},
                },
            )

    @staticmethod
    def _item(kind: str, key: str, version: str, items: list[str], scores: list[float]) -> Any:
        return {
            "pk": {"S": f"{kind}#{key}"},
            "sk": {"S": version},
            "items": {"L": [{"S": i} for i in items]},
            "scores": {"L": [{"N": str(Decimal(repr(s)))} for s in scores]},
        }


_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _number(value: float) -> str:
    """A score as DynamoDB's N takes it: exact, with Decimal's form where repr has an 'e'."""
    text = repr(value)
    return text if "e" not in text else str(Decimal(text))


def dynamodb_json(kind: str, key: str, version: str, items: list[str], scores: list[float]) -> str:
    """One row as a line of ImportTable's DynamoDB JSON, `{"Item": ...}` with the item
    `DynamoStore` writes, built as text: json.dumps of the nested maps costs twice as much,
    and a big shop stages 10 million of these a night."""
    listed = ",".join(['{"S":%s}' % _quote(i) for i in items])  # noqa: UP031
    numbers = ",".join(['{"N":"%s"}' % _number(s) for s in scores])  # noqa: UP031
    return (
        f'{{"Item":{{"pk":{{"S":{_quote(f"{kind}#{key}")}}},"sk":{{"S":{_quote(version)}}},'
        f'"items":{{"L":[{listed}]}},"scores":{{"L":[{numbers}]}}}}}}'
    )


# A table swap stages each version's rows in the lake: `<STORE_IMPORT>/<version>/` (read
# whole by ImportTable, so nothing else is put there) and `<STORE_IMPORT>/<version>.json`.
#: Rows in one staged file (about 15 MB of gzipped DynamoDB JSON at 25 items a row).
ROWS_PER_FILE: Final = 100_000


class PublishPending(ServingError):
    """A table swap's import is still running: the same publish, run again, waits on it."""


@dataclass
class DynamoImportStore(DynamoStore):
    """A table swap: each version becomes its own table by DynamoDB's ImportTable.

    `write_version` stages rows in the lake as gzipped DynamoDB JSON; `activate` imports
    them into `<table>.<version>` (on-demand, encrypted with `kms_key`), waits for the
    import, refuses it unless every staged row arrived, and only then points readers at
    it. An import still running after `wait_seconds` raises `PublishPending`; publishing
    again finds the staged rows and the import by its client token, and waits on."""

    lake: S3Lake | None = None
    kms_key: str | None = None
    #: How long one try waits on the import (a Lambda's 15 minutes also hold the staging);
    #: the state machine tries again every minute while it raises PublishPending.
    wait_seconds: float = 300.0
    poll_seconds: float = 15.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    #: Rows staged per version and kind by this process, for the record `activate` keeps.
    _staged: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    def _lake(self) -> S3Lake:
        if self.lake is None:
            raise StoreError("a table-swap publish needs the S3 lake to stage its rows in")
        return self.lake

    def version_table(self, version: str) -> str:
        """The table a version is imported into."""
        return f"{self.table}.{version}"

    def write_version(self, version: str, kind: str, rows: Iterable[Row]) -> int:
        """Gzipped DynamoDB JSON under `<STORE_IMPORT>/<version>/`, ROWS_PER_FILE a file."""
        _check_kind(kind)
        lake, count, part = self._lake(), 0, 0
        source = iter(rows)
        batch = list(islice(source, ROWS_PER_FILE))
        while batch:
            lines = (dynamodb_json(kind, row[0], version, row[1], row[2]) for row in batch)
            # Level 1: the CPU goes to building lines; the bytes to S3 are few either way.
            body = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1)
            lake.write_bytes(f"{STORE_IMPORT}/{version}/{kind}-{part:05d}.json.gz", body)
            count, part = count + len(batch), part + 1
            batch = list(islice(source, ROWS_PER_FILE))
        self._staged.setdefault(version, {})[kind] = count
        return count

    def prepared(self, version: str) -> dict[str, int] | None:
        """The staged rows' counts, once `activate` has recorded them."""
        key = f"{STORE_IMPORT}/{version}.json"
        if not self._lake().exists(key):
            return None
        found: dict[str, int] = json.loads(self._lake().read_bytes(key))["rows"]
        return found

    def activate(self, version: str) -> None:
        """Import the staged rows into the version's table, check them, flip the pointer."""
        self._flip(version, self._import(version))

    def ready(self, version: str) -> None:
        """Import the staged rows into the version's table and check them; no flip."""
        self._import(version)

    def _import(self, version: str) -> str:
        """The version's table, imported from its staged rows (waiting on an import an
        earlier try started) and checked row for row."""
        lake, table = self._lake(), self.version_table(version)
        key = f"{STORE_IMPORT}/{version}.json"
        if lake.exists(key):
            record = json.loads(lake.read_bytes(key))
        else:
            # The token goes down before the import starts: a try that dies in between
            # gets the same import back (ImportTable keeps a token for 8 hours).
            rows = self._staged.get(version, {})
            record = {"rows": rows, "token": f"recs-{uuid.uuid4().hex}"}
            lake.write_bytes(key, json.dumps(record).encode())
        expected = sum(record["rows"].values())
        with self._errors():
            if record.get("import") is None:
                record["import"] = self._start_import(version, table, record["token"])
                lake.write_bytes(key, json.dumps(record).encode())
            done = self._wait(record["import"], table)
        imported, errors = done.get("ImportedItemCount", 0), done.get("ErrorCount", 0)
        if done.get("ImportStatus") != "COMPLETED" or errors or imported != expected:
            self._abandon(version, table)
            raise StoreError(
                f"the import into {table} is {done.get('ImportStatus')} with {imported:,} of "
                f"the {expected:,} staged rows ({errors:,} refused; "
                f"{done.get('FailureCode') or 'the log group /aws-dynamodb/imports says why'}"
                f"{': ' + str(done['FailureMessage']) if done.get('FailureMessage') else ''}). "
                "Readers stay on the previous version; its table is deleted, so publishing "
                "again stages and imports anew"
            )
        self._tables[version] = table
        return table

    def _abandon(self, version: str, table: str) -> None:
        """A failed import's table and its record go, so the next publish starts over."""
        db = self._db()
        with suppress(db.exceptions.ResourceNotFoundException):
            db.delete_table(TableName=table)
        self._lake().delete(f"{STORE_IMPORT}/{version}.json")

    def _start_import(self, version: str, table: str, token: str) -> str:
        lake = self._lake()
        sse: dict[str, Any] = {"Enabled": True, "SSEType": "KMS"}
        if self.kms_key:
            sse["KMSMasterKeyId"] = self.kms_key
        creation: Any = {
            "TableName": table,
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "SSESpecification": sse,
        }
        db = self._db()
        # ImportTable refuses a name in use, but only once the import runs, as a failed
        # import whose clean-up would then delete a table it never made: ask first.
        not_ours = StoreError(
            f"table {table} already exists, but this publish has no record of importing "
            f"it ({STORE_IMPORT}/{version}.json is gone): delete the table and publish again"
        )
        with suppress(db.exceptions.ResourceNotFoundException):
            db.describe_table(TableName=table)
            raise not_ours
        try:
            started = db.import_table(
                ClientToken=token,
                S3BucketSource={
                    "S3Bucket": lake.bucket,
                    "S3KeyPrefix": lake.object_key(f"{STORE_IMPORT}/{version}") + "/",
                },
                InputFormat="DYNAMODB_JSON",
                InputCompressionType="GZIP",
                TableCreationParameters=creation,
            )
        except db.exceptions.ResourceInUseException:
            raise not_ours from None
        return str(started["ImportTableDescription"]["ImportArn"])

    def _wait(self, arn: str, table: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            found = self._db().describe_import(ImportArn=arn)["ImportTableDescription"]
            status = found.get("ImportStatus")
            if status in {"COMPLETED", "FAILED", "CANCELLED"}:
                return dict(found)
            if time.monotonic() + self.poll_seconds > deadline:
                raise PublishPending(
                    f"the import into {table} is still {status}; publishing again waits on it"
                )
            self.sleep(self.poll_seconds)

    def drop_version(self, version: str, keys: Iterable[tuple[str, str]]) -> None:
        """Delete the version's table and its staged rows (a version published as rows,
        before the swap, has its rows deleted)."""
        table = self._tables.get(version) or self.version_table(version)
        db = self._db()
        if table == self.table:  # published as rows, beside the pointer: never this table
            super().drop_version(version, keys)
        else:
            try:
                db.delete_table(TableName=table)
            except db.exceptions.ResourceNotFoundException:
                super().drop_version(version, keys)
        lake = self._lake()
        for key in [*lake.list(f"{STORE_IMPORT}/{version}/"), f"{STORE_IMPORT}/{version}.json"]:
            lake.delete(key)


DEFAULT_STORE: Final = "./var/online-store.sqlite3"


def open_store(
    uri: str, *, publish: str = "rows", lake: Lake | None = None, kms_key: str | None = None
) -> SQLiteStore | DynamoStore:
    """A store from its URI: a SQLite file path, or `dynamodb://table`. With `publish`
    "import", a DynamoDB store publishes by table swap, staging its rows in `lake` (S3)."""
    table = table_name(uri)
    if table is not None:
        if not table:
            raise ValueError(f"RECS_STORE {uri!r} names no table; use dynamodb://table-name")
        if publish != "import":
            return DynamoStore(table)
        if not isinstance(lake, S3Lake):
            raise SettingsError(
                f"RECS_STORE_PUBLISH=import stages each version in the S3 lake for DynamoDB to "
                f"import, and the lake is {lake.uri if lake else 'not given'}: use an s3:// "
                "lake, or RECS_STORE_PUBLISH=rows"
            )
        return DynamoImportStore(table, lake=lake, kms_key=kms_key)
    if "://" in uri:
        raise ValueError(f"RECS_STORE {uri!r}: use a file path or dynamodb://table-name")
    return SQLiteStore(Path(uri).expanduser())
