"""Fixtures shared by every suite."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from common.lake import LocalLake, S3Lake

EVENTS_DIR = Path(__file__).parent / "events"


def free_port() -> int:
    """A TCP port free on loopback now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load_event(name: str) -> dict[str, Any]:
    """A real payload from tests/events/."""
    payload: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return payload


@pytest.fixture
def local_lake(tmp_path: Path) -> LocalLake:
    """An empty lake in a temporary folder."""
    return LocalLake(tmp_path / "lake")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and a region, so no test can reach a real AWS account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.aws)])
def lake(
    request: pytest.FixtureRequest, tmp_path: Path, aws_env: None
) -> Iterator[LocalLake | S3Lake]:
    """Each Lake adapter in turn: a folder on disk, and an S3 prefix under moto."""
    if request.param == "local":
        yield LocalLake(tmp_path / "lake")
        return
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="shop-lake")
        yield S3Lake("shop-lake", "prod", client=s3)


@pytest.fixture
def s3_server(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto as a real HTTP server, for clients boto3 does not carry (pyarrow's S3)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its state per process, not per server: start each test from nothing.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    yield endpoint
    server.stop()


def _create_table(client: Any, name: str, hash_key: str, range_key: str) -> None:
    """An on-demand table of two string keys."""
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": hash_key, "KeyType": "HASH"},
            {"AttributeName": range_key, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": hash_key, "AttributeType": "S"},
            {"AttributeName": range_key, "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def create_history_table(client: Any, name: str) -> None:
    """The recent-history table the Kinesis consumer fills, as `ingestion.history` reads it."""
    _create_table(client, name, "user_id", "event")


def create_store_table(client: Any, name: str) -> None:
    """The online store's table (`pk`, `sk`), as `serving.store.DynamoStore` reads it."""
    _create_table(client, name, "pk", "sk")
