"""The Amazon Personalize backend of the trainer seam.

The ETL's export (`exports/personalize/<run>/`) goes in; what comes out is what the local
trainer writes: batch recommendations in `batch/<version>/users.jsonl` (Personalize's own
batch format, which ours copies) and a manifest with Personalize's metrics.

Every step is idempotent: resources have names derived from the stage and the version, and
a step that finds its resource already there uses it. A step whose resource is still being
created raises `TrainingPending` once its wait runs out, so a Step Functions state can retry
it later (or the same command can be run again) without starting anything twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from botocore.exceptions import ClientError

from common.errors import SettingsError
from ingestion.lake import Lake, read_json
from training.errors import TrainingFailed, TrainingPending
from training.settings import TrainingSettings

if TYPE_CHECKING:
    from mypy_boto3_personalize import PersonalizeClient

DATASET_TYPES: Final = ("Interactions", "Items", "Users")
USER_PERSONALIZATION: Final = "arn:aws:personalize:::recipe/aws-user-personalization-v2"
NOT_PURCHASED: Final = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
_DONE: Final = "ACTIVE"


@dataclass(frozen=True)
class PersonalizeSettings:
    """Where and as whom Personalize works."""

    stage: str
    #: IAM role Personalize assumes to read the export and write batch output.
    role_arn: str
    #: `s3://bucket/prefix` of the lake, where exports are read and batch output is written.
    lake_uri: str
    recipe_arn: str = USER_PERSONALIZATION
    #: How long one call waits for a resource before raising TrainingPending.
    wait_seconds: float = 600.0
    poll_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: TrainingSettings) -> PersonalizeSettings:
        """From `recs train`'s settings: the role must be set and the lake must be on S3."""
        if not settings.personalize_role_arn:
            raise SettingsError(
                "the personalize backend needs RECS_PERSONALIZE_ROLE_ARN (or "
                "--personalize-role-arn): the IAM role Personalize assumes to read the lake"
            )
        if not settings.lake.startswith("s3://"):
            raise SettingsError(
                f"the personalize backend needs an S3 lake (RECS_LAKE=s3://...), not "
                f"{settings.lake}"
            )
        return cls(
            stage=settings.stage, role_arn=settings.personalize_role_arn, lake_uri=settings.lake
        )


@dataclass
class PersonalizeRun:
    """The ARNs one training run created or found, and its metrics."""

    version: str
    arns: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tracking_id: str | None = None


class PersonalizeTrainer:
    """Trains, evaluates and deploys with Amazon Personalize through boto3."""

    def __init__(
        self,
        settings: PersonalizeSettings,
        client: PersonalizeClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._client = client
        self._sleep = sleep

    @property
    def client(self) -> PersonalizeClient:
        """The boto3 client, made on first use."""
        if self._client is None:
            import boto3

            self._client = boto3.client("personalize")
        return self._client

    def _name(self, *parts: str) -> str:
        return "-".join(("recs", self.settings.stage, *parts))[:63]

    # -- waiting --------------------------------------------------------------------------

    def wait(
        self, kind: str, arn: str, describe: Callable[[], Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        """Poll until ACTIVE and return the resource; raise TrainingFailed on failure,
        TrainingPending on timeout."""
        deadline = time.monotonic() + self.settings.wait_seconds
        while True:
            resource = describe()
            status = str(resource.get("status", ""))
            if status == _DONE:
                return resource
            if status.endswith("FAILED"):
                reason = resource.get("failureReason", "no reason given")
                raise TrainingFailed(f"Personalize {kind} {arn} failed: {reason}")
            if time.monotonic() + self.settings.poll_seconds > deadline:
                raise TrainingPending(f"Personalize {kind} {arn} is {status}; retry later")
            self._sleep(self.settings.poll_seconds)

    def _create(
        self, create: Callable[[], Mapping[str, Any]], key: str, find: Callable[[], str]
    ) -> str:
        """Create a resource, or find the one a previous attempt created."""
        try:
            return str(create()[key])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
            return find()

    # -- the steps, in order --------------------------------------------------------------

    def dataset_group(self) -> str:
        """The stage's dataset group."""
        name = self._name()
        arn = self._create(
            lambda: self.client.create_dataset_group(name=name),
            "datasetGroupArn",
            lambda: self._find(self.client.list_dataset_groups(), "datasetGroups", name),
        )
        self.wait(
            "dataset group",
            arn,
            lambda: self.client.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"],
        )
        return arn

    @staticmethod
    def _find(listing: Mapping[str, Any], key: str, name: str) -> str:
        for entry in listing.get(key, []):
            if entry.get("name") == name:
                for field_name, value in entry.items():
                    if field_name.endswith("Arn"):
                        return str(value)
        raise TrainingFailed(f"Personalize said {name} exists but does not list it")

    def datasets(self, group_arn: str, schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        """A schema and a dataset for each dataset type the export has."""
        return {
            dataset_type: self._dataset(group_arn, dataset_type, schemas[dataset_type])
            for dataset_type in DATASET_TYPES
            if dataset_type in schemas
        }

    def _dataset(self, group_arn: str, dataset_type: str, schema: Mapping[str, Any]) -> str:
        name = self._name(dataset_type.lower())
        schema_arn = self._create(
            lambda: self.client.create_schema(name=name, schema=json.dumps(schema)),
            "schemaArn",
            lambda: self._find(self.client.list_schemas(), "schemas", name),
        )
        dataset_arn = self._create(
            lambda: self.client.create_dataset(
                name=name, datasetGroupArn=group_arn, datasetType=dataset_type, schemaArn=schema_arn
            ),
            "datasetArn",
            lambda: self._find(
                self.client.list_datasets(datasetGroupArn=group_arn), "datasets", name
            ),
        )
        self.wait(
            "dataset",
            dataset_arn,
            lambda: self.client.describe_dataset(datasetArn=dataset_arn)["dataset"],
        )
        return dataset_arn

    def import_data(
        self,
        version: str,
        dataset_arns: Mapping[str, str],
        export_prefix: str,
        mode: Literal["FULL", "INCREMENTAL"] = "FULL",
    ) -> list[str]:
        """One import job per dataset, reading the export's CSVs from S3; all start first."""
        jobs = [
            self._import_job(version, dataset_type, dataset_arn, export_prefix, mode)
            for dataset_type, dataset_arn in dataset_arns.items()
        ]
        for arn in jobs:
            self.wait(
                "dataset import job",
                arn,
                lambda arn=arn: self.client.describe_dataset_import_job(  # type: ignore[misc]
                    datasetImportJobArn=arn
                )["datasetImportJob"],
            )
        return jobs

    def _import_job(
        self,
        version: str,
        dataset_type: str,
        dataset_arn: str,
        export_prefix: str,
        mode: Literal["FULL", "INCREMENTAL"],
    ) -> str:
        file = dataset_type.lower()
        name = self._name(version, file)
        location = f"{self.settings.lake_uri}/{export_prefix}/{file}.csv"
        return self._create(
            lambda: self.client.create_dataset_import_job(
                jobName=name,
                datasetArn=dataset_arn,
                dataSource={"dataLocation": location},
                roleArn=self.settings.role_arn,
                importMode=mode,
            ),
            "datasetImportJobArn",
            lambda: self._find(
                self.client.list_dataset_import_jobs(datasetArn=dataset_arn),
                "datasetImportJobs",
                name,
            ),
        )

    def train(
        self, version: str, group_arn: str, mode: Literal["FULL", "UPDATE"] = "FULL"
    ) -> tuple[str, dict[str, float]]:
        """The solution, a new solution version, and Personalize's offline metrics for it."""
        solution_name = self._name("user-personalization")
        solution_arn = self._create(
            lambda: self.client.create_solution(
                name=solution_name,
                datasetGroupArn=group_arn,
                recipeArn=self.settings.recipe_arn,
            ),
            "solutionArn",
            lambda: self._find(
                self.client.list_solutions(datasetGroupArn=group_arn), "solutions", solution_name
            ),
        )
        self.wait(
            "solution",
            solution_arn,
            lambda: self.client.describe_solution(solutionArn=solution_arn)["solution"],
        )
        version_name = self._name(version)
        version_arn = self._create(
            lambda: self.client.create_solution_version(
                name=version_name, solutionArn=solution_arn, trainingMode=mode
            ),
            "solutionVersionArn",
            lambda: self._find(
                self.client.list_solution_versions(solutionArn=solution_arn),
                "solutionVersions",
                version_name,
            ),
        )
        self.wait(
            "solution version",
            version_arn,
            lambda: self.client.describe_solution_version(solutionVersionArn=version_arn)[
                "solutionVersion"
            ],
        )
        metrics = self.client.get_solution_metrics(solutionVersionArn=version_arn)["metrics"]
        return version_arn, {k: float(v) for k, v in metrics.items()}

    def deploy(self, version_arn: str, min_tps: int = 1) -> str:
        """Create the stage's campaign on this solution version, or point it at it."""
        name = self._name()
        try:
            arn = self.client.create_campaign(
                name=name, solutionVersionArn=version_arn, minProvisionedTPS=min_tps
            )["campaignArn"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
            arn = self._find(self.client.list_campaigns(), "campaigns", name)
            self.client.update_campaign(
                campaignArn=arn, solutionVersionArn=version_arn, minProvisionedTPS=min_tps
            )
        self.wait(
            "campaign", arn, lambda: self.client.describe_campaign(campaignArn=arn)["campaign"]
        )
        return arn

    def not_purchased_filter(self, group_arn: str) -> str:
        """The filter the API's default `not-purchased` maps to."""
        name = self._name("not-purchased")
        arn = self._create(
            lambda: self.client.create_filter(
                name=name, datasetGroupArn=group_arn, filterExpression=NOT_PURCHASED
            ),
            "filterArn",
            lambda: self._find(
                self.client.list_filters(datasetGroupArn=group_arn), "Filters", name
            ),
        )
        self.wait("filter", arn, lambda: self.client.describe_filter(filterArn=arn)["filter"])
        return arn

    def event_tracker(self, group_arn: str) -> tuple[str, str]:
        """The event tracker live events go to; returns its ARN and tracking id."""
        name = self._name()
        arn = self._create(
            lambda: self.client.create_event_tracker(name=name, datasetGroupArn=group_arn),
            "eventTrackerArn",
            lambda: self._find(
                self.client.list_event_trackers(datasetGroupArn=group_arn), "eventTrackers", name
            ),
        )
        tracker = self.wait(
            "event tracker",
            arn,
            lambda: self.client.describe_event_tracker(eventTrackerArn=arn)["eventTracker"],
        )
        return arn, str(tracker["trackingId"])

    def batch_recommendations(
        self, version: str, version_arn: str, users_input: str, filter_arn: str | None, k: int
    ) -> str:
        """A batch inference job for every user listed in `users_input` (S3 JSON lines);
        its output lands in `batch/<version>/personalize/` of the lake."""
        name = self._name(version, "users")
        output = f"{self.settings.lake_uri}/batch/{version}/personalize/"
        request: dict[str, Any] = {
            "jobName": name,
            "solutionVersionArn": version_arn,
            "numResults": k,
            "jobInput": {"s3DataSource": {"path": users_input}},
            "jobOutput": {"s3DataDestination": {"path": output}},
            "roleArn": self.settings.role_arn,
        }
        if filter_arn:
            request["filterArn"] = filter_arn
        arn = self._create(
            lambda: self.client.create_batch_inference_job(**request),
            "batchInferenceJobArn",
            lambda: self._find(
                self.client.list_batch_inference_jobs(solutionVersionArn=version_arn),
                "batchInferenceJobs",
                name,
            ),
        )
        self.wait(
            "batch inference job",
            arn,
            lambda: self.client.describe_batch_inference_job(batchInferenceJobArn=arn)[
                "batchInferenceJob"
            ],
        )
        return arn


def _user_ids(interactions_csv: bytes) -> list[str]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        pa.BufferReader(interactions_csv),
        convert_options=pacsv.ConvertOptions(column_types={"USER_ID": pa.string()}),
    )
    return sorted(pc.unique(table["USER_ID"]).to_pylist())


def train_with_personalize(
    lake: Lake,
    trainer: PersonalizeTrainer,
    *,
    export_prefix: str,
    version: str,
    k: int = 25,
    mode: Literal["FULL", "UPDATE"] = "FULL",
) -> PersonalizeRun:
    """The whole run: import the export, train, score, batch-recommend, deploy, record.

    Writes `batch/<version>/users.jsonl` (copied from Personalize's batch output, which has
    our format already) and `models/<version>/manifest.json` with `"backend": "personalize"`,
    the ARNs and Personalize's metrics. Safe to call again after `TrainingPending`.
    """
    run = PersonalizeRun(version=version)
    schemas = {}
    for dataset_type in DATASET_TYPES:
        key = f"{export_prefix}/{dataset_type.lower()}.schema.json"
        if lake.exists(key):
            schemas[dataset_type] = read_json(lake, key)
    if "Interactions" not in schemas:
        raise TrainingFailed(
            f"no interactions export under {export_prefix}/; run `recs export personalize`"
        )
    group = trainer.dataset_group()
    datasets = trainer.datasets(group, schemas)
    trainer.import_data(version, datasets, export_prefix)
    version_arn, run.metrics = trainer.train(version, group, mode=mode)
    filter_arn = trainer.not_purchased_filter(group)
    users_key = f"batch-input/{version}/users.json"
    users = _user_ids(lake.read_bytes(f"{export_prefix}/interactions.csv"))
    lake.write_bytes(users_key, "".join(json.dumps({"userId": u}) + "\n" for u in users).encode())
    job = trainer.batch_recommendations(version, version_arn, lake.url(users_key), filter_arn, k)
    lake.write_bytes(
        f"batch/{version}/users.jsonl",
        lake.read_bytes(f"batch/{version}/personalize/users.json.out"),
    )
    campaign = trainer.deploy(version_arn)
    tracker, run.tracking_id = trainer.event_tracker(group)
    run.arns = {
        "dataset_group": group,
        **{f"dataset_{t.lower()}": arn for t, arn in datasets.items()},
        "solution_version": version_arn,
        "filter_not_purchased": filter_arn,
        "batch_inference_job": job,
        "campaign": campaign,
        "event_tracker": tracker,
    }
    manifest = {
        "version": version,
        "backend": "personalize",
        "recipe": trainer.settings.recipe_arn,
        "training_mode": mode,
        "metrics": {"personalize": run.metrics},
        "arns": run.arns,
        "tracking_id": run.tracking_id,
        "export": export_prefix,
        "batch": [f"batch/{version}/users.jsonl"],
        # Personalize scored its own holdout, not ours, so the gate cannot compare it with
        # production: the batch output waits for `recs publish --force` after a review.
        "status": "candidate",
        "gate": {
            "passed": None,
            "reasons": [
                "Personalize evaluated this version on its own holdout (metrics above); "
                "the promotion gate compares models on ours, so review and publish with --force"
            ],
        },
    }
    lake.write_bytes(f"models/{version}/manifest.json", json.dumps(manifest, indent=2).encode())
    return run
