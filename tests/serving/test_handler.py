"""The API's services with AWS behind them (moto): a setting left on a local file is an error
at start-up, and a missing table is a 503 that names it, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from common.errors import SettingsError
from ingestion.history import DynamoHistory
from serving.handler import build_services, idempotency_layer
from serving.idempotency import LocalRequestContext
from serving.settings import ServingSettings
from tests.conftest import load_event
from tests.serving_helpers import PublishedShop, handler_for, published_shop, services_for

pytestmark = pytest.mark.aws


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> PublishedShop:
    return published_shop(tmp_path_factory.mktemp("shop"))


def test_aws_lake_and_store_with_local_files_left_is_refused_at_start_up(
    aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = ServingSettings.from_env(
        {"RECS_LAKE": "s3://shop-lake", "RECS_STORE": "dynamodb://recs-online-store"}
    )
    with mock_aws(), pytest.raises(SettingsError) as refused:
        build_services(settings)
    message = str(refused.value)
    for named in ("RECS_SINK=local", "RECS_IDEMPOTENCY_STORE", "RECS_HISTORY=local"):
        assert named in message
    assert "Terraform output kinesis_stream" in message
    assert not (tmp_path / "var").exists()  # nothing was written beside the Lambda


def test_every_aws_setting_given_builds_without_a_local_file(
    aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = ServingSettings.from_env(
        {
            "RECS_LAKE": "s3://shop-lake",
            "RECS_STORE": "dynamodb://recs-online-store",
            "RECS_SINK": "kinesis",
            "RECS_KINESIS_STREAM": "recs-events",
            "RECS_HISTORY": "dynamodb://recs-history",
            "RECS_IDEMPOTENCY_STORE": "dynamodb://recs-idempotency",
        }
    )
    assert settings.local_files_beside_aws() == []
    with mock_aws():
        build_services(settings)
    assert not (tmp_path / "var").exists()


def _call(services: Any, method: str, path: str, query: str = "", body: str = "") -> Any:
    event = load_event("apigw_health.json")
    event["rawPath"], event["rawQueryString"] = path, query
    event["requestContext"]["http"].update(method=method, path=path)
    if query:
        event["queryStringParameters"] = dict(p.split("=") for p in query.split("&"))
    if body:
        event["body"] = body
        event["headers"].update({"content-type": "application/json", "idempotency-key": "k-1"})
    response = handler_for(services)(event, LocalRequestContext())
    return response["statusCode"], json.loads(response["body"])


def test_missing_history_and_idempotency_tables_are_503s_that_name_them(
    aws_env: None, shop: PublishedShop, tmp_path: Path
) -> None:
    with mock_aws():
        services = services_for(shop, tmp_path)
        services.recommender.history = DynamoHistory("recs-history")
        services.idempotency = idempotency_layer("dynamodb://recs-idempotency")
        status, body = _call(services, "GET", "/v1/recommendations/personalized", "userId=U1&k=3")
        assert status == 503
        assert body["error"].startswith("The recent-history table recs-history does not exist")
        event = json.dumps({"userId": "U1", "itemId": "I1", "event_type": "view"})
        status, body = _call(services, "POST", "/v1/events", body=event)
        assert status == 503
        assert body["error"].startswith("The idempotency table recs-idempotency does not exist")
        # Once the tables exist, the same requests work: nothing was half-accepted.
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName="recs-idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        assert _call(services, "POST", "/v1/events", body=event)[0] == 202
        services.sink.close()
