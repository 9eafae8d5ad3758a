"""One suite for both idempotency persistence layers: ours on SQLite, Powertools' on DynamoDB
(under moto). A retried request runs once and answers the same; a reused key with another
body is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from moto import mock_aws

from serving.idempotency import LocalRequestContext, SQLitePersistenceLayer


@pytest.fixture(params=["sqlite", pytest.param("dynamodb", marks=pytest.mark.aws)])
def layer(
    request: pytest.FixtureRequest, tmp_path: Path, aws_env: None
) -> Iterator[BasePersistenceLayer]:
    if request.param == "sqlite":
        yield SQLitePersistenceLayer(tmp_path / "idempotency.sqlite3")
        return
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="recs-idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoDBPersistenceLayer(table_name="recs-idempotency")


def _accepting(layer: BasePersistenceLayer, stored: list[dict[str, Any]]) -> Any:
    config = IdempotencyConfig(
        event_key_jmespath="key", payload_validation_jmespath="events", use_local_cache=False
    )

    @idempotent_function(data_keyword_argument="request", persistence_store=layer, config=config)
    def accept(request: dict[str, Any]) -> dict[str, Any]:
        stored.extend(request["events"])
        return {"ok": True, "accepted": len(request["events"])}

    config.register_lambda_context(LocalRequestContext(timeout_ms=30_000))
    return accept


def test_a_retry_runs_once_and_answers_the_same(layer: BasePersistenceLayer) -> None:
    stored: list[dict[str, Any]] = []
    accept = _accepting(layer, stored)
    request = {"key": "k-1", "events": [{"userId": "U1", "itemId": "I1"}]}
    first = accept(request=request)
    second = accept(request=dict(request))
    assert first == second == {"ok": True, "accepted": 1}
    assert len(stored) == 1
    accept(request={"key": "k-2", "events": [{"userId": "U2", "itemId": "I1"}]})
    assert len(stored) == 2


def test_a_reused_key_with_another_body_is_refused(layer: BasePersistenceLayer) -> None:
    stored: list[dict[str, Any]] = []
    accept = _accepting(layer, stored)
    accept(request={"key": "k-1", "events": [{"userId": "U1", "itemId": "I1"}]})
    with pytest.raises(IdempotencyValidationError):
        accept(request={"key": "k-1", "events": [{"userId": "U9", "itemId": "I9"}]})
    assert len(stored) == 1


def test_a_request_that_died_in_progress_frees_its_key_after_its_deadline(
    tmp_path: Path,
) -> None:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

    layer = SQLitePersistenceLayer(tmp_path / "idempotency.sqlite3")
    layer.configure(IdempotencyConfig(event_key_jmespath="key"), function_name="accept")

    def in_progress(deadline_ms: int) -> DataRecord:
        return DataRecord(
            idempotency_key="accept#k",
            status="INPROGRESS",
            expiry_timestamp=2**40,
            in_progress_expiry_timestamp=deadline_ms,
        )

    layer._put_record(in_progress(1))  # a request whose deadline passed long ago
    layer._put_record(in_progress(2**50))
    assert layer._get_record("accept#k").in_progress_expiry_timestamp == 2**50
    # A request still within its deadline keeps the key.
    with pytest.raises(IdempotencyItemAlreadyExistsError):
        layer._put_record(in_progress(2**50))
