"""The Amazon Personalize backend: exact request shapes (botocore's Stubber; moto has no
Personalize), idempotent re-runs, and the errors a state machine retries or catches."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from etl.personalize import INTERACTIONS_SCHEMA
from training.errors import TrainingFailed, TrainingPending
from training.personalize import (
    NOT_PURCHASED,
    USER_PERSONALIZATION,
    PersonalizeSettings,
    PersonalizeTrainer,
)
from training.personalize_run import personalize_gate, train_with_personalize

ROLE = "arn:aws:iam::123456789012:role/recs-personalize"
GROUP = "arn:aws:personalize:us-east-1:123456789012:dataset-group/recs-prod"
SETTINGS = PersonalizeSettings(
    stage="prod", role_arn=ROLE, lake_uri="s3://shop-lake/prod", wait_seconds=100, poll_seconds=1
)


@pytest.fixture
def stubbed(aws_env: None) -> Iterator[tuple[PersonalizeTrainer, Stubber]]:
    client = boto3.client("personalize")
    with Stubber(client) as stub:
        yield PersonalizeTrainer(SETTINGS, client=client, sleep=lambda _s: None), stub
        stub.assert_no_pending_responses()


def _exists(stub: Stubber, method: str) -> None:
    stub.add_client_error(method, service_error_code="ResourceAlreadyExistsException")


def test_a_dataset_group_is_created_and_waited_for(stubbed: Any) -> None:
    trainer, stub = stubbed
    stub.add_response("create_dataset_group", {"datasetGroupArn": GROUP}, {"name": "recs-prod"})
    for status in ("CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE"):
        stub.add_response(
            "describe_dataset_group",
            {"datasetGroup": {"status": status}},
            {"datasetGroupArn": GROUP},
        )
    assert trainer.dataset_group() == GROUP


def test_a_rerun_finds_what_the_first_run_created(stubbed: Any) -> None:
    trainer, stub = stubbed
    _exists(stub, "create_dataset_group")
    stub.add_response(
        "list_dataset_groups",
        {
            "datasetGroups": [
                {"name": "other", "datasetGroupArn": "x"},
                {"name": "recs-prod", "datasetGroupArn": GROUP},
            ]
        },
    )
    stub.add_response("describe_dataset_group", {"datasetGroup": {"status": "ACTIVE"}})
    assert trainer.dataset_group() == GROUP


def test_still_in_progress_raises_training_pending_and_failure_names_the_reason(
    stubbed: Any,
) -> None:
    trainer, stub = stubbed
    trainer.settings = PersonalizeSettings(
        stage="prod", role_arn=ROLE, lake_uri="s3://b/p", wait_seconds=0, poll_seconds=1
    )
    stub.add_response("create_dataset_group", {"datasetGroupArn": GROUP})
    stub.add_response("describe_dataset_group", {"datasetGroup": {"status": "CREATE IN_PROGRESS"}})
    with pytest.raises(TrainingPending, match="is CREATE IN_PROGRESS; retry later"):
        trainer.dataset_group()
    _exists(stub, "create_dataset_group")
    stub.add_response(
        "list_dataset_groups", {"datasetGroups": [{"name": "recs-prod", "datasetGroupArn": GROUP}]}
    )
    stub.add_response(
        "describe_dataset_group",
        {"datasetGroup": {"status": "CREATE FAILED", "failureReason": "KMS key not usable"}},
    )
    with pytest.raises(TrainingFailed, match="KMS key not usable"):
        trainer.dataset_group()


def test_datasets_and_imports_use_the_exports_schemas_and_files(stubbed: Any) -> None:
    trainer, stub = stubbed
    schema_arn = "arn:aws:personalize:us-east-1:123456789012:schema/recs-prod-interactions"
    dataset_arn = f"{GROUP}/INTERACTIONS"
    stub.add_response(
        "create_schema",
        {"schemaArn": schema_arn},
        {"name": "recs-prod-interactions", "schema": json.dumps(INTERACTIONS_SCHEMA)},
    )
    stub.add_response(
        "create_dataset",
        {"datasetArn": dataset_arn},
        {
            "name": "recs-prod-interactions",
            "datasetGroupArn": GROUP,
            "datasetType": "Interactions",
            "schemaArn": schema_arn,
        },
    )
    stub.add_response(
        "describe_dataset", {"dataset": {"status": "ACTIVE"}}, {"datasetArn": dataset_arn}
    )
    arns = trainer.datasets(GROUP, {"Interactions": INTERACTIONS_SCHEMA})
    assert arns == {"Interactions": dataset_arn}

    job = "arn:aws:personalize:us-east-1:123456789012:dataset-import-job/recs-prod-v1-interactions"
    stub.add_response(
        "create_dataset_import_job",
        {"datasetImportJobArn": job},
        {
            "jobName": "recs-prod-v1-interactions",
            "datasetArn": dataset_arn,
            "dataSource": {
                "dataLocation": "s3://shop-lake/prod/exports/personalize/v1/interactions.csv"
            },
            "roleArn": ROLE,
            "importMode": "FULL",
        },
    )
    stub.add_response(
        "describe_dataset_import_job",
        {"datasetImportJob": {"status": "ACTIVE"}},
        {"datasetImportJobArn": job},
    )
    assert trainer.import_data("v1", arns, "exports/personalize/v1") == [job]


def test_training_a_solution_version_returns_personalizes_metrics(stubbed: Any) -> None:
    trainer, stub = stubbed
    solution = "arn:aws:personalize:us-east-1:123456789012:solution/recs-prod-user-personalization"
    version = f"{solution}/abc"
    stub.add_response(
        "create_solution",
        {"solutionArn": solution},
        {
            "name": "recs-prod-user-personalization",
            "datasetGroupArn": GROUP,
            "recipeArn": USER_PERSONALIZATION,
            # Personalize's default is true: a weekly training of its own, billed.
            "performAutoTraining": False,
        },
    )
    stub.add_response(
        "describe_solution", {"solution": {"status": "ACTIVE"}}, {"solutionArn": solution}
    )
    stub.add_response(
        "create_solution_version",
        {"solutionVersionArn": version},
        {"name": "recs-prod-v2", "solutionArn": solution, "trainingMode": "UPDATE"},
    )
    stub.add_response(
        "describe_solution_version",
        {"solutionVersion": {"status": "ACTIVE"}},
        {"solutionVersionArn": version},
    )
    stub.add_response(
        "get_solution_metrics",
        {
            "solutionVersionArn": version,
            "metrics": {"coverage": 0.3, "normalized_discounted_cumulative_gain_at_10": 0.12},
        },
        {"solutionVersionArn": version},
    )
    arn, metrics = trainer.train("v2", GROUP, mode="UPDATE")
    assert arn == version
    assert metrics["normalized_discounted_cumulative_gain_at_10"] == 0.12


def test_deploy_creates_the_campaign_once_then_updates_it(stubbed: Any) -> None:
    trainer, stub = stubbed
    campaign = "arn:aws:personalize:us-east-1:123456789012:campaign/recs-prod"
    stub.add_response(
        "create_campaign",
        {"campaignArn": campaign},
        {"name": "recs-prod", "solutionVersionArn": "sv1", "minProvisionedTPS": 1},
    )
    stub.add_response(
        "describe_campaign", {"campaign": {"status": "ACTIVE"}}, {"campaignArn": campaign}
    )
    assert trainer.deploy("sv1") == campaign
    _campaign_exists(stub, campaign)
    on_sv1 = {"campaign": {"status": "ACTIVE", "solutionVersionArn": "sv1"}}
    stub.add_response("describe_campaign", on_sv1, {"campaignArn": campaign})
    stub.add_response(
        "update_campaign",
        {"campaignArn": campaign},
        {"campaignArn": campaign, "solutionVersionArn": "sv2", "minProvisionedTPS": 1},
    )
    # The campaign stays ACTIVE on sv1 while its update runs: the wait follows the update.
    for status in ("CREATE IN_PROGRESS", "ACTIVE"):
        update = {"solutionVersionArn": "sv2", "status": status}
        answer = {"campaign": {**on_sv1["campaign"], "latestCampaignUpdate": update}}
        stub.add_response("describe_campaign", answer, {"campaignArn": campaign})
    assert trainer.deploy("sv2") == campaign


def _campaign_exists(stub: Stubber, campaign: str) -> None:
    """CreateCampaign refused (the stage's campaign exists), then found in the listing."""
    _exists(stub, "create_campaign")
    stub.add_response(
        "list_campaigns", {"campaigns": [{"name": "recs-prod", "campaignArn": campaign}]}
    )


def _updating(to: str, status: str = "CREATE IN_PROGRESS") -> dict[str, Any]:
    update = {"solutionVersionArn": to, "status": status}
    return {
        "campaign": {
            "status": "ACTIVE",
            "solutionVersionArn": "sv1",
            "latestCampaignUpdate": update,
        }
    }


def test_a_retried_publish_waits_for_its_own_campaign_update_instead_of_repeating_it(
    stubbed: Any,
) -> None:
    """UpdateCampaign on a campaign still updating raises ResourceInUseException."""
    trainer, stub = stubbed
    campaign = "arn:aws:personalize:us-east-1:123456789012:campaign/recs-prod"
    _campaign_exists(stub, campaign)
    stub.add_response("describe_campaign", _updating("sv2"))  # the first attempt's update
    stub.add_response("describe_campaign", _updating("sv2", "ACTIVE"))
    assert trainer.deploy("sv2") == campaign  # no update_campaign: it would be refused

    # An update to another version still running: wait it out, do not pile on.
    _campaign_exists(stub, campaign)
    stub.add_response("describe_campaign", _updating("sv9"))
    with pytest.raises(TrainingPending, match="being updated to sv9"):
        trainer.deploy("sv2")

    # And if the service says so anyway, that is a retry later, not a failure.
    _campaign_exists(stub, campaign)
    stub.add_response("describe_campaign", {"campaign": {"status": "ACTIVE"}})
    stub.add_client_error("update_campaign", service_error_code="ResourceInUseException")
    with pytest.raises(TrainingPending, match="busy"):
        trainer.deploy("sv2")


def test_a_rerun_finds_jobs_by_job_name_and_solution_versions_by_describing_them(
    stubbed: Any,
) -> None:
    """Import- and batch-job summaries carry `jobName`; solution-version summaries no name."""
    trainer, stub = stubbed
    job = "arn:aws:personalize:us-east-1:123456789012:dataset-import-job/recs-prod-v1-items"
    _exists(stub, "create_dataset_import_job")
    stub.add_response(
        "list_dataset_import_jobs",
        {"datasetImportJobs": [{"jobName": "recs-prod-v0-items", "datasetImportJobArn": "old"}],
         "nextToken": "page-2"},
        {"datasetArn": "d-items"},
    )  # fmt: skip
    stub.add_response(
        "list_dataset_import_jobs",
        {"datasetImportJobs": [{"jobName": "recs-prod-v1-items", "datasetImportJobArn": job}]},
        {"datasetArn": "d-items", "nextToken": "page-2"},
    )
    assert trainer.start_imports("v1", {"Items": "d-items"}, "exports/personalize/v1").jobs == [job]

    solution = "arn:aws:personalize:us-east-1:123456789012:solution/recs-prod-user-personalization"
    _exists(stub, "create_solution_version")
    stub.add_response(
        "list_solution_versions",
        {"solutionVersions": [
            {"solutionVersionArn": f"{solution}/old", "creationDateTime": 1},
            {"solutionVersionArn": f"{solution}/new", "creationDateTime": 2},
        ]},
        {"solutionArn": solution},
    )  # fmt: skip
    stub.add_response(
        "describe_solution_version",
        {"solutionVersion": {"name": "recs-prod-v1", "status": "ACTIVE"}},
        {"solutionVersionArn": f"{solution}/new"},
    )
    assert trainer.start_solution_version("v1", solution) == f"{solution}/new"

    _exists(stub, "create_batch_inference_job")
    stub.add_response(
        "list_batch_inference_jobs",
        {"batchInferenceJobs": [
            {"jobName": "recs-prod-v1-users", "solutionVersionArn": "sv1",
             "batchInferenceJobArn": "b1"},
        ]},
        {"solutionVersionArn": "sv1"},
    )  # fmt: skip
    assert trainer.start_batch_recommendations("v1", "sv1", "s3://in", None, 25) == "b1"


def test_filter_tracker_and_batch_job_requests(stubbed: Any) -> None:
    trainer, stub = stubbed
    stub.add_response(
        "create_filter",
        {"filterArn": "f1"},
        {
            "name": "recs-prod-not-purchased",
            "datasetGroupArn": GROUP,
            "filterExpression": NOT_PURCHASED,
        },
    )
    stub.add_response("describe_filter", {"filter": {"status": "ACTIVE"}}, {"filterArn": "f1"})
    assert trainer.not_purchased_filter(GROUP) == "f1"

    stub.add_response(
        "create_event_tracker",
        {"eventTrackerArn": "t1", "trackingId": "tid"},
        {"name": "recs-prod", "datasetGroupArn": GROUP},
    )
    stub.add_response(
        "describe_event_tracker", {"eventTracker": {"status": "ACTIVE", "trackingId": "tid"}}
    )
    assert trainer.event_tracker(GROUP) == ("t1", "tid")

    stub.add_response(
        "create_batch_inference_job",
        {"batchInferenceJobArn": "b1"},
        {
            "jobName": "recs-prod-v3-users",
            "solutionVersionArn": "sv3",
            "numResults": 25,
            "jobInput": {"s3DataSource": {"path": "s3://shop-lake/prod/batch-input/v3/users.json"}},
            "jobOutput": {
                "s3DataDestination": {"path": "s3://shop-lake/prod/batch/v3/personalize/"}
            },
            "roleArn": ROLE,
            "filterArn": "f1",
        },
    )
    stub.add_response(
        "describe_batch_inference_job",
        {"batchInferenceJob": {"status": "ACTIVE"}},
        {"batchInferenceJobArn": "b1"},
    )
    job = trainer.batch_recommendations(
        "v3", "sv3", "s3://shop-lake/prod/batch-input/v3/users.json", "f1", 25
    )
    assert job == "b1"


def test_a_whole_run_imports_trains_batches_gates_and_records(
    stubbed: Any, local_lake: Any
) -> None:
    trainer, stub = stubbed
    export = "exports/personalize/r1"
    local_lake.write_bytes(
        f"{export}/interactions.schema.json", json.dumps(INTERACTIONS_SCHEMA).encode()
    )
    local_lake.write_bytes(
        f"{export}/interactions.csv",
        b"USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\nU2,I1,view,1\nU1,I1,view,2\nU2,I2,purchase,3\n",
    )
    # Our own version of the same name, which the personalize trainer writes first.
    ndcg = "normalized_discounted_cumulative_gain_at_10"
    local_lake.write_bytes(
        "models/v9/manifest.json",
        json.dumps({"version": "v9", "metrics": {"popularity-count": {ndcg: 0.1}}}).encode(),
    )
    ours = b'{"input":{"userId":"U2"},"output":{"recommendedItems":["I9"],"scores":[1.0]}}\n'
    local_lake.write_bytes("batch/v9/users.jsonl", ours)
    # Where Personalize's batch job writes its output (the service does; here the test). It
    # could not answer U2 (an error line): U2 keeps our row.
    output = (
        b'{"input":{"userId":"U1"},"output":{"recommendedItems":["I2"],"scores":[0.5]},'
        b'"error":null}\n{"input":{"userId":"U2"},"error":"user not found"}\n'
    )
    local_lake.write_bytes("batch/v9/personalize/users.json.out", output)
    for method, response in [
        ("create_dataset_group", {"datasetGroupArn": GROUP}),
        ("describe_dataset_group", {"datasetGroup": {"status": "ACTIVE"}}),
        ("create_schema", {"schemaArn": "s1"}),
        ("create_dataset", {"datasetArn": "d1"}),
        ("describe_dataset", {"dataset": {"status": "ACTIVE"}}),
        ("create_dataset_import_job", {"datasetImportJobArn": "j1"}),
        ("describe_dataset_import_job", {"datasetImportJob": {"status": "ACTIVE"}}),
        ("create_solution", {"solutionArn": "so1"}),
        ("describe_solution", {"solution": {"status": "ACTIVE"}}),
        ("create_solution_version", {"solutionVersionArn": "sv9"}),
        ("describe_solution_version", {"solutionVersion": {"status": "ACTIVE"}}),
        ("get_solution_metrics", {"metrics": {"coverage": 0.4, ndcg: 0.2}}),
        ("create_filter", {"filterArn": "f1"}),
        ("describe_filter", {"filter": {"status": "ACTIVE"}}),
        ("create_batch_inference_job", {"batchInferenceJobArn": "b9"}),
        ("describe_batch_inference_job", {"batchInferenceJob": {"status": "ACTIVE"}}),
        ("create_event_tracker", {"eventTrackerArn": "t1", "trackingId": "tid"}),
        ("describe_event_tracker", {"eventTracker": {"status": "ACTIVE", "trackingId": "tid"}}),
    ]:
        stub.add_response(method, response)
    run = train_with_personalize(local_lake, trainer, export_prefix=export, version="v9")
    assert run.metrics == {"coverage": 0.4, ndcg: 0.2}
    assert "campaign" not in run.arns  # publish moves the campaign, after the gate
    assert (
        local_lake.read_bytes("batch-input/v9/users.json")
        == b'{"userId": "U1"}\n{"userId": "U2"}\n'
    )
    rows = [json.loads(x) for x in local_lake.read_bytes("batch/v9/users.jsonl").splitlines()]
    assert [(r["input"]["userId"], r["output"]["recommendedItems"]) for r in rows] == [
        ("U1", ["I2"]),
        ("U2", ["I9"]),
    ]
    manifest = json.loads(local_lake.read_bytes("models/v9/manifest.json"))
    assert manifest["backend"] == "personalize"
    assert manifest["metrics"]["personalize"][ndcg] == 0.2
    assert manifest["metrics"]["popularity-count"][ndcg] == 0.1  # ours, kept
    assert manifest["status"] == "approved"
    assert manifest["gate"]["reasons"] == [
        f"{ndcg} 0.2000 beats popularity-count's 0.1000; compared on the metric names both "
        f"report ({ndcg}); Personalize scored its own holdout, popularity on ours"
    ]
    assert manifest["tracking_id"] == "tid"
    assert manifest["personalize_users"] == 1


def test_the_gate_compares_with_a_personalize_production_on_shared_names(
    local_lake: Any,
) -> None:
    ndcg = "normalized_discounted_cumulative_gain_at_10"
    local_lake.write_bytes("models/production.json", b'{"version": "v1"}')
    local_lake.write_bytes(
        "models/v1/manifest.json",
        json.dumps(
            {"backend": "personalize", "metrics": {"personalize": {ndcg: 0.3, "coverage": 0.2}}}
        ).encode(),
    )
    gate = personalize_gate(local_lake, {ndcg: 0.25, "precision_at_5": 0.1}, {})
    assert gate["passed"] is False
    assert gate["reasons"][0].startswith(f"{ndcg} 0.2500 does not beat production v1")
    assert f"({ndcg})" in gate["reasons"][0]  # the one name both report
    gate = personalize_gate(local_lake, {"coverage": 0.9}, {})
    assert gate["passed"] is False
    assert "is not reported by both" in gate["reasons"][0]


def test_an_incremental_export_imports_its_interactions_incrementally_and_the_rest_whole(
    stubbed: Any,
) -> None:
    trainer, stub = stubbed
    for dataset, mode in (("interactions", "INCREMENTAL"), ("items", "FULL")):
        stub.add_response(
            "create_dataset_import_job",
            {"datasetImportJobArn": f"job-{dataset}"},
            {
                "jobName": f"recs-prod-v4-{dataset}",
                "datasetArn": f"d-{dataset}",
                "dataSource": {
                    "dataLocation": f"s3://shop-lake/prod/exports/personalize/v4/{dataset}.csv"
                },
                "roleArn": ROLE,
                "importMode": mode,
            },
        )
    datasets = {"Interactions": "d-interactions", "Items": "d-items"}
    imports = trainer.start_imports("v4", datasets, "exports/personalize/v4", "INCREMENTAL")
    assert imports.jobs == ["job-interactions", "job-items"]
    assert imports.left == 0


def test_an_incremental_export_in_parts_imports_them_one_job_after_another(stubbed: Any) -> None:
    """An INCREMENTAL job takes 1 GB, so a big day comes in parts: each gets its own job,
    started only once the one before it is imported; a FULL import reads their folder."""
    trainer, stub = stubbed
    export = "exports/personalize/v5"
    parts = ["interactions/part-00000.csv", "interactions/part-00001.csv"]
    base = "s3://shop-lake/prod/exports/personalize/v5"

    def create(part: int, status: str) -> None:
        job = f"job-{part}"
        stub.add_response(
            "create_dataset_import_job",
            {"datasetImportJobArn": job},
            {
                "jobName": f"recs-prod-v5-interactions-{part + 1}of2",
                "datasetArn": "d-interactions",
                "dataSource": {"dataLocation": f"{base}/{parts[part]}"},
                "roleArn": ROLE,
                "importMode": "INCREMENTAL",
            },
        )
        stub.add_response(
            "describe_dataset_import_job",
            {"datasetImportJob": {"status": status}},
            {"datasetImportJobArn": job},
        )

    datasets = {"Interactions": "d-interactions"}
    create(0, "CREATE PENDING")
    first = trainer.start_imports("v5", datasets, export, "INCREMENTAL", parts)
    assert (first.jobs, first.left) == (["job-0"], 1)  # the second waits for the first

    # Asked again once the first job is done: it is found, seen ACTIVE, the second starts.
    _exists(stub, "create_dataset_import_job")
    stub.add_response(
        "list_dataset_import_jobs",
        {"datasetImportJobs": [
            {"jobName": "recs-prod-v5-interactions-1of2", "datasetImportJobArn": "job-0"}
        ]},
        {"datasetArn": "d-interactions"},
    )  # fmt: skip
    stub.add_response(
        "describe_dataset_import_job",
        {"datasetImportJob": {"status": "ACTIVE"}},
        {"datasetImportJobArn": "job-0"},
    )
    create(1, "CREATE PENDING")
    second = trainer.start_imports("v5", datasets, export, "INCREMENTAL", parts)
    assert (second.jobs, second.left) == (["job-1"], 0)

    # A failed part stops the night with Personalize's reason, before any later part.
    stub.add_response(
        "create_dataset_import_job",
        {"datasetImportJobArn": "job-x"},
        {
            "jobName": "recs-prod-v6-interactions-1of2",
            "datasetArn": "d-interactions",
            "dataSource": {"dataLocation": f"{base}/{parts[0]}"},
            "roleArn": ROLE,
            "importMode": "INCREMENTAL",
        },
    )
    stub.add_response(
        "describe_dataset_import_job",
        {"datasetImportJob": {"status": "CREATE FAILED", "failureReason": "bad row"}},
        {"datasetImportJobArn": "job-x"},
    )
    with pytest.raises(TrainingFailed, match="job-x failed: bad row"):
        trainer.start_imports("v6", datasets, export, "INCREMENTAL", parts)

    # The weekly FULL import reads the folder in one job (100 GB a job).
    stub.add_response(
        "create_dataset_import_job",
        {"datasetImportJobArn": "job-full"},
        {
            "jobName": "recs-prod-v7-interactions",
            "datasetArn": "d-interactions",
            "dataSource": {"dataLocation": f"{base}/interactions/"},
            "roleArn": ROLE,
            "importMode": "FULL",
        },
    )
    full = trainer.start_imports("v7", datasets, export, "FULL", parts)
    assert (full.jobs, full.left) == (["job-full"], 0)


def _named_trainer(stub_client: Any, filters: dict[str, str]) -> PersonalizeTrainer:
    settings = dataclasses.replace(SETTINGS, filters=filters)
    return PersonalizeTrainer(settings, client=stub_client, sleep=lambda _s: None)


def test_named_filters_get_a_personalize_copy_each(stubbed: Any) -> None:
    trainer, stub = stubbed
    cheap = "EXCLUDE ItemID WHERE Items.PRICE > $MAX"
    bought = 'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
    trainer = _named_trainer(trainer.client, {"cheap": cheap, "again": bought})
    stub.add_response(
        "create_filter",
        {"filterArn": "f-again"},
        {"name": "recs-prod-filter-again", "datasetGroupArn": GROUP, "filterExpression": bought},
    )
    # Made by an earlier run: found by name.
    _exists(stub, "create_filter")
    stub.add_response(
        "list_filters",
        {"Filters": [{"name": "recs-prod-filter-cheap", "filterArn": "f-cheap"}]},
        {"datasetGroupArn": GROUP},
    )
    for arn, expression in (("f-again", bought), ("f-cheap", cheap)):
        stub.add_response(
            "describe_filter",
            {"filter": {"status": "ACTIVE", "filterExpression": expression}},
            {"filterArn": arn},
        )
    assert trainer.named_filters(GROUP) == {"again": "f-again", "cheap": "f-cheap"}


def test_a_changed_or_one_too_many_filter_fails_with_what_to_do(stubbed: Any) -> None:
    trainer, stub = stubbed
    trainer = _named_trainer(trainer.client, {"cheap": "EXCLUDE ItemID WHERE Items.PRICE > 9"})
    stub.add_response("create_filter", {"filterArn": "f-cheap"})
    stub.add_response(
        "describe_filter",
        {
            "filter": {
                "status": "ACTIVE",
                "filterExpression": "EXCLUDE ItemID WHERE Items.PRICE > 5",
            }
        },
    )
    with pytest.raises(TrainingFailed, match="cannot change a filter: delete it"):
        trainer.named_filters(GROUP)
    stub.add_client_error(
        "create_filter",
        service_error_code="LimitExceededException",
        service_message="Maximum number of filters reached",
    )
    with pytest.raises(TrainingFailed, match="10 filters unless the quota is raised"):
        trainer.named_filters(GROUP)


def test_filters_with_a_time_bound_are_not_copied(stubbed: Any) -> None:
    from common.filters import NamedFilter
    from training.settings import TrainingSettings

    settings = TrainingSettings(
        lake="s3://shop-lake/prod",
        personalize_role_arn=ROLE,
        filters={
            "cheap": NamedFilter(expression="EXCLUDE ItemID WHERE Items.PRICE > 9"),
            "lately": NamedFilter(
                expression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("view")',
                within_days=7,
            ),
        },
    )
    assert PersonalizeSettings.from_settings(settings).filters == {
        "cheap": "EXCLUDE ItemID WHERE Items.PRICE > 9"
    }
