"""One suite for both online stores: SQLite on disk, and DynamoDB under moto."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from common.errors import SettingsError
from common.lake import LocalLake, S3Lake
from common.layout import STORE_IMPORT
from serving.errors import StoreError
from serving.store import (
    DynamoImportStore,
    DynamoStore,
    PublishPending,
    SQLiteStore,
    open_store,
)
from tests.conftest import create_store_table


def _table(db: Any) -> None:
    create_store_table(db, "recs-online")


def _swap(db: Any, **options: Any) -> DynamoImportStore:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="shop-lake")
    lake = S3Lake("shop-lake", "prod", client=s3)
    return DynamoImportStore("recs-online", client=db, lake=lake, poll_seconds=0.01, **options)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("dynamodb", marks=pytest.mark.aws),
        pytest.param("table-swap", marks=pytest.mark.aws),
    ]
)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, aws_env: None
) -> Iterator[SQLiteStore | DynamoStore]:
    if request.param == "sqlite":
        yield SQLiteStore(tmp_path / "store.sqlite3")
        return
    with mock_aws():
        db = boto3.client("dynamodb")
        _table(db)
        yield _swap(db) if request.param == "table-swap" else DynamoStore("recs-online", client=db)


def test_a_version_goes_live_when_the_pointer_flips(store: SQLiteStore | DynamoStore) -> None:
    assert store.active_version() is None
    store.write_version("v1", "user", [("U1", ["I1", "I2"], [0.9, 0.5])])
    assert store.active_version() is None
    store.activate("v1")
    assert store.active_version() == "v1"
    assert store.recommendations("user", "U1", "v1") == (["I1", "I2"], [0.9, 0.5])

    rows = [(f"U{n}", ["I3"], [0.25]) for n in range(60)]  # more than one DynamoDB batch
    assert store.write_version("v2", "user", rows) == 60
    assert store.active_version() == "v1"
    store.activate("v2")
    assert store.active_version() == "v2"
    assert store.recommendations("user", "U1", "v2") == (["I3"], [0.25])
    # The previous version stays readable, for answers from a model loaded before the flip.
    assert store.recommendations("user", "U1", "v1") == (["I1", "I2"], [0.9, 0.5])
    assert store.recommendations("item", "U1", "v2") is None
    assert store.recommendations("user", "U1", "v9") is None


def test_an_old_version_can_be_dropped(store: SQLiteStore | DynamoStore) -> None:
    store.write_version("v1", "item", [("I1", ["I2"], [1.0])])
    store.write_version("v2", "item", [("I1", ["I3"], [1.0])])
    store.activate("v1")
    store.drop_version("v2", [("item", "I1")])
    if isinstance(store, DynamoImportStore):
        # A swap checks the import against what was staged: the dropped rows are missing.
        with pytest.raises(StoreError, match="with 0 of the 1 staged rows"):
            store.activate("v2")
        assert store.active_version() == "v1"
        return
    store.activate("v2")
    assert store.recommendations("item", "I1", "v2") is None
    assert store.recommendations("item", "I1", "v1") == (["I2"], [1.0])
    with pytest.raises(ValueError, match="kind must be one of"):
        store.write_version("v3", "shop", [])


def test_store_uris(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path / "s.sqlite3")), SQLiteStore)
    assert open_store("dynamodb://recs-online") == DynamoStore("recs-online")
    with pytest.raises(ValueError, match="names no table"):
        open_store("dynamodb://")


@pytest.mark.aws
def test_a_missing_table_is_a_clear_store_error(aws_env: None) -> None:
    with mock_aws():
        store = DynamoStore("no-such-table", client=boto3.client("dynamodb"))
        with pytest.raises(StoreError, match="DynamoDB table no-such-table: ResourceNotFound"):
            store.write_version("v1", "user", [("U1", ["I1"], [1.0])])
        with pytest.raises(StoreError, match="Check RECS_STORE"):
            store.active_version()


@pytest.mark.aws
def test_a_table_swap_imports_each_version_into_its_own_table(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 million rows of BatchWriteItem take 42 minutes at a new table's 4,000 writes a
    second; ImportTable writes none. Readers follow the pointer to the version's table."""
    from moto.dynamodb.models.table_import import TableImport

    calls: list[str] = []
    with mock_aws():
        db = boto3.client("dynamodb")
        db.meta.events.register(
            "before-call.dynamodb.ImportTable", lambda **kw: calls.append("ImportTable")
        )
        _table(db)
        store = _swap(db, kms_key="arn:aws:kms:us-east-1:123456789012:key/k", wait_seconds=0)
        rows = [(f"U{n}", ["I1", "I2"], [0.5, 0.25]) for n in range(250)]
        monkeypatch.setattr("serving.store.ROWS_PER_FILE", 100)
        assert store.write_version("v1", "user", rows) == 250
        assert store.write_version("v1", "item", [("I1", ["I2"], [1.0])]) == 1
        staged = sorted(store._lake().list(f"{STORE_IMPORT}/v1/"))
        assert [k.rsplit("/", 1)[1] for k in staged] == [
            "item-00000.json.gz", "user-00000.json.gz", "user-00001.json.gz", "user-00002.json.gz"
        ]  # fmt: skip

        # The import outlives this try: nothing flips, and a second try waits on the same one.
        release = threading.Event()
        original = TableImport.run
        monkeypatch.setattr(TableImport, "run", lambda self: (release.wait(5), original(self)))
        with pytest.raises(PublishPending, match=r"recs-online\.v1 is still IN_PROGRESS"):
            store.activate("v1")
        assert store.active_version() is None
        assert store.prepared("v1") == {"user": 250, "item": 1}
        release.set()
        retry = DynamoImportStore(
            "recs-online", client=db, lake=store.lake, poll_seconds=0.01
        )  # a new process: only the lake's record
        retry.activate("v1")
        assert calls == ["ImportTable"]

        # Any reader, from the store's URI alone, follows the pointer to the version table.
        reader = DynamoStore("recs-online", client=db)
        assert reader.active_version() == "v1"
        assert reader.recommendations("user", "U7", "v1") == (["I1", "I2"], [0.5, 0.25])
        assert reader.recommendations("item", "I1", "v1") == (["I2"], [1.0])
        table = db.describe_table(TableName="recs-online.v1")["Table"]
        assert table["ItemCount"] == 251
        assert db.scan(TableName="recs-online")["Count"] == 1  # the pointer, no rows

        # The next version swaps in; dropping the old one deletes its table and staging.
        retry.write_version("v2", "user", [("U1", ["I9"], [1.0])])
        retry.activate("v2")
        assert reader.active_version() == "v2"
        assert reader.recommendations("user", "U1", "v1") == (["I1", "I2"], [0.5, 0.25])
        retry.drop_version("v1", [])
        assert "recs-online.v1" not in db.list_tables()["TableNames"]
        assert list(store._lake().list(f"{STORE_IMPORT}/v1")) == []


@pytest.mark.aws
def test_a_swap_that_lost_rows_is_refused_and_starts_over(aws_env: None) -> None:
    """Nothing accepted is lost: an import that took fewer rows than were staged never
    becomes what readers see, and its table goes so that the next publish starts clean."""
    with mock_aws():
        db = boto3.client("dynamodb")
        _table(db)
        store = _swap(db)
        store.write_version("v1", "user", [("U1", ["I1"], [1.0])])
        store.activate("v1")
        store.write_version("v2", "user", [("U1", ["I2"], [1.0]), ("U2", ["I3"], [1.0])])
        lake = store._lake()
        key = f"{STORE_IMPORT}/v2/user-00000.json.gz"
        lines = gzip.decompress(lake.read_bytes(key)).splitlines()
        lake.write_bytes(key, gzip.compress(lines[0] + b"\n" + b'{"Item": {"nope": 1}}\n'))
        with pytest.raises(StoreError, match="with 1 of the 2 staged rows"):
            store.activate("v2")
        assert store.active_version() == "v1"
        assert "recs-online.v2" not in db.list_tables()["TableNames"]
        assert store.prepared("v2") is None  # staged again by the next publish
        store.write_version("v2", "user", [("U1", ["I2"], [1.0]), ("U2", ["I3"], [1.0])])
        store.activate("v2")
        assert store.recommendations("user", "U2", "v2") == (["I3"], [1.0])


def test_a_table_swap_needs_an_s3_lake(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="RECS_STORE_PUBLISH=import stages each version"):
        open_store("dynamodb://t", publish="import", lake=LocalLake(tmp_path))
    assert isinstance(
        open_store("dynamodb://t", publish="import", lake=S3Lake("b")), DynamoImportStore
    )


@pytest.mark.parametrize(
    ("items", "scores"),
    [(['I"1', "é", "", "a\\b"], [1e-07, 0.5, 3.0, -2.5e300]), ([], [])],
)
def test_a_staged_line_is_the_item_a_row_publish_writes(
    items: list[str], scores: list[float]
) -> None:
    """Staged lines are built as text for speed; they must say exactly what BatchWriteItem
    would have written, escapes and exponents included."""
    import json

    from serving.store import dynamodb_json

    line = dynamodb_json("user", 'U"x', "v1", items, scores)
    assert json.loads(line) == {"Item": DynamoStore._item("user", 'U"x', "v1", items, scores)}


@pytest.mark.aws
def test_a_swap_never_deletes_a_table_it_did_not_make(aws_env: None) -> None:
    """A version table with no record of this store importing it is left alone, and so is
    the pointer's own table when an old version was published as rows beside it."""
    with mock_aws():
        db = boto3.client("dynamodb")
        _table(db)
        rows_store = DynamoStore("recs-online", client=db)
        rows_store.write_version("v0", "user", [("U1", ["I1"], [1.0])])
        rows_store.activate("v0")  # published as rows, before the swap
        db.create_table(
            TableName="recs-online.v1", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        )  # fmt: skip
        store = _swap(db)
        store.write_version("v1", "user", [("U1", ["I2"], [1.0])])
        with pytest.raises(StoreError, match=r"recs-online\.v1 already exists"):
            store.activate("v1")
        assert "recs-online.v1" in db.list_tables()["TableNames"]
        assert store.active_version() == "v0"  # the pointer names no table: rows
        store.drop_version("v0", [("user", "U1")])
        assert "recs-online" in db.list_tables()["TableNames"]
        assert store.recommendations("user", "U1", "v0") is None


def test_an_experiment_is_kept_beside_the_pointer_and_its_candidate_readable_unflipped(
    store: SQLiteStore | DynamoStore,
) -> None:
    store.write_version("v1", "user", [("U1", ["I1"], [1.0])])
    store.activate("v1")
    assert store.experiment() is None
    store.write_version("v2", "user", [("U1", ["I2"], [0.5])])
    store.ready("v2")  # a table swap imports v2's table here
    assert store.active_version() == "v1"
    body = {"id": "exp-1", "candidate": "v2", "control": "v1", "share": 0.1}
    store.set_experiment(body)
    assert store.active_version() == "v1"
    assert store.experiment() == body
    assert store.recommendations("user", "U1", "v2") == (["I2"], [0.5])
    store.set_experiment(None)
    assert store.experiment() is None
    store.set_experiment(None)  # stopping twice is no error


@pytest.mark.aws
def test_a_reader_finds_the_candidates_own_table_through_the_experiment(
    aws_env: None,
) -> None:
    with mock_aws():
        db = boto3.client("dynamodb")
        _table(db)
        writer = _swap(db)
        writer.write_version("v2", "item", [("I1", ["I9"], [0.7])])
        writer.ready("v2")
        writer.set_experiment({"id": "exp-1", "candidate": "v2", "control": "v1", "share": 0.5})
        reader = DynamoStore("recs-online", client=db)  # another process: the API
        assert reader.recommendations("item", "I1", "v2") is None  # not in the main table
        assert reader.experiment() is not None
        assert reader.recommendations("item", "I1", "v2") == (["I9"], [0.7])
        # Stopped and dropped before the reader looks again: no rows, not an error.
        writer.set_experiment(None)
        writer.drop_version("v2", [("item", "I1")])
        assert reader.recommendations("item", "I1", "v2") is None
