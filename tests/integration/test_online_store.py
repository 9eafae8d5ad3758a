"""One suite for both online stores: SQLite on disk, and DynamoDB under moto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from serving.errors import StoreError
from serving.store import DynamoStore, SQLiteStore, open_store


@pytest.fixture(params=["sqlite", pytest.param("dynamodb", marks=pytest.mark.aws)])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, aws_env: None
) -> Iterator[SQLiteStore | DynamoStore]:
    if request.param == "sqlite":
        yield SQLiteStore(tmp_path / "store.sqlite3")
        return
    with mock_aws():
        db = boto3.client("dynamodb")
        db.create_table(
            TableName="recs-online",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoStore("recs-online", client=db)


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
