"""A version trained with Amazon Personalize goes through the same gate, `recs publish` and API
as ours. The lake is S3 (moto's server, as Personalize reads and writes S3); Personalize
itself is botocore's Stubber, as moto has no Personalize beyond schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from common.lake import S3Lake
from etl.personalize import export_personalize
from ingestion.sinks import EventLog
from serving.publish import publish
from serving.recommend import LiveModel, Recommender
from serving.store import SQLiteStore
from tests.etl_helpers import curated_training_shop
from training.personalize_run import deploy_version
from training.pipeline import train
from training.registry import version_name
from training.settings import TrainingSettings
from training.trainer import PersonalizeBackend
from training.versions import describe

NOW = datetime(2026, 11, 2, 2, tzinfo=UTC)
VERSION = version_name(NOW)
ROLE = "arn:aws:iam::123456789012:role/recs-personalize"
NDCG = "normalized_discounted_cumulative_gain_at_10"
CAMPAIGN = "arn:aws:personalize:us-east-1:123456789012:campaign/recs-prod"
pytestmark = pytest.mark.aws


@pytest.fixture
def lake(s3_server: str) -> S3Lake:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="shop-lake")
    found = S3Lake("shop-lake", "prod", client=s3)
    curated_training_shop(found)
    export_personalize(found, run="r1")
    return found


@pytest.fixture
def personalize(s3_server: str) -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("personalize")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _a_night_on_personalize(stub: Stubber, datasets: int) -> None:
    """What Personalize answers, call by call, for one training run."""
    stub.add_response("create_dataset_group", {"datasetGroupArn": "g1"})
    stub.add_response("describe_dataset_group", {"datasetGroup": {"status": "ACTIVE"}})
    for n in range(datasets):
        stub.add_response("create_schema", {"schemaArn": f"s{n}"})
        stub.add_response("create_dataset", {"datasetArn": f"d{n}"})
        stub.add_response("describe_dataset", {"dataset": {"status": "ACTIVE"}})
    for n in range(datasets):
        stub.add_response("create_dataset_import_job", {"datasetImportJobArn": f"j{n}"})
    for _ in range(datasets):
        stub.add_response("describe_dataset_import_job", {"datasetImportJob": {"status": "ACTIVE"}})
    for method, response in [
        ("create_solution", {"solutionArn": "so1"}),
        ("describe_solution", {"solution": {"status": "ACTIVE"}}),
        ("create_solution_version", {"solutionVersionArn": "sv1"}),
        ("describe_solution_version", {"solutionVersion": {"status": "ACTIVE"}}),
        ("get_solution_metrics", {"metrics": {NDCG: 0.9, "coverage": 0.5}}),
        ("create_filter", {"filterArn": "f1"}),
        ("describe_filter", {"filter": {"status": "ACTIVE"}}),
        ("create_batch_inference_job", {"batchInferenceJobArn": "b1"}),
        ("describe_batch_inference_job", {"batchInferenceJob": {"status": "ACTIVE"}}),
        ("create_event_tracker", {"eventTrackerArn": "t1", "trackingId": "tid"}),
        ("describe_event_tracker", {"eventTracker": {"status": "ACTIVE", "trackingId": "tid"}}),
    ]:
        stub.add_response(method, response)


def test_a_personalize_version_is_gated_published_and_served(
    lake: S3Lake, personalize: tuple[Any, Stubber], tmp_path: Path
) -> None:
    client, stub = personalize
    datasets = sum(
        lake.exists(f"exports/personalize/r1/{name}.schema.json")
        for name in ("interactions", "items", "users")
    )
    part = lake.read_bytes("exports/personalize/r1/interactions/part-00000.csv")
    user = part.splitlines()[1].split(b",")[0]
    picks = ["P1", "P2", "P3", "P4"]
    # What Personalize's batch job writes to the lake (the service does; here the test).
    lake.write_bytes(
        f"batch/{VERSION}/personalize/users.json.out",
        json.dumps(
            {
                "input": {"userId": user.decode()},
                "output": {"recommendedItems": picks, "scores": [0.4, 0.3, 0.2, 0.1]},
                "error": None,
            }
        ).encode()
        + b"\n",
    )
    _a_night_on_personalize(stub, datasets)
    settings = TrainingSettings(lake="s3://shop-lake/prod", personalize_role_arn=ROLE, stage="prod")
    trained = PersonalizeBackend(settings, client=client).train(
        lake, now=NOW, export_prefix="exports/personalize/r1"
    )
    assert trained.version == VERSION

    found = describe(lake, VERSION, None)
    assert (found.backend, found.state, found.ndcg10) == ("personalize", "approved", 0.9)
    assert "Personalize scored its own holdout" in found.reasons[0]

    stub.add_response("create_campaign", {"campaignArn": CAMPAIGN})
    stub.add_response("describe_campaign", {"campaign": {"status": "ACTIVE"}})
    store = SQLiteStore(tmp_path / "store.sqlite3")
    report = publish(
        lake, store, VERSION, deploy=lambda m, p: deploy_version(m, client=client, progress=p)
    )
    assert report.campaign == CAMPAIGN
    assert json.loads(lake.read_bytes("models/production.json"))["campaign"] == CAMPAIGN

    api = Recommender(LiveModel(lake, store), store, EventLog(tmp_path / "log.sqlite3"))
    answer = api.personalized(user.decode(), 3)
    assert (answer.items, answer.source) == ([("P1", 0.4), ("P2", 0.3), ("P3", 0.2)], "batch")
    # Related items come from our own model, trained under the same version.
    item = str(api.live.get().item_ids[0])
    assert api.related(item, 3).items


def test_a_publish_whose_campaign_update_fails_flips_nothing(
    lake: S3Lake, personalize: tuple[Any, Stubber], tmp_path: Path
) -> None:
    client, stub = personalize
    # Our own model of the version, as the Personalize trainer writes it beside the campaign's
    # (publish loads it as the API will before anything moves).
    version = train(lake, now=NOW).version
    manifest = json.loads(lake.read_bytes(f"models/{version}/manifest.json"))
    manifest |= {"backend": "personalize", "stage": "prod", "status": "approved",
                 "arns": {"solution_version": "sv1"}}  # fmt: skip
    lake.write_bytes(f"models/{version}/manifest.json", json.dumps(manifest).encode())
    stub.add_client_error("create_campaign", "LimitExceededException")
    store = SQLiteStore(tmp_path / "store.sqlite3")
    with pytest.raises(Exception, match="LimitExceededException"):
        publish(lake, store, version, deploy=lambda m, p: deploy_version(m, client=client))
    assert store.active_version() is None
    assert not lake.exists("models/production.json")
