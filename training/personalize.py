"""The Amazon Personalize backend of the trainer seam.

The ETL's export (`exports/personalize/<run>/`) goes in. What comes out is a version like the
local trainer's, built on top of it: our own model of the same name (the fallback, related
items and realtime answers), with Personalize's batch answers as its users' rows in
`batch/<version>/users.jsonl` (Personalize's batch format, which ours copies), Personalize's
metrics, and a gate decision against production on the metric names both report.
`recs publish` moves the stage's campaign to the version's solution version before the flip
(`deploy_version`).

Every step is idempotent: resources have names derived from the stage and the version, and
a step that finds its resource already there uses it. A step whose resource is still being
created raises `TrainingPending` once its wait runs out, so a Step Functions state can retry
it later (or the same command can be run again) without starting anything twice.

Finding is done as the service allows it. Creating a name that exists raises
`ResourceAlreadyExistsException`; the listing is then read page by page and matched on the
summary's `name`, or `jobName` for import and batch jobs. Solution-version summaries carry no
name at all, so each listed version is described, newest first, until the name matches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from botocore.exceptions import ClientError

from common.errors import SettingsError
from etl.personalize import OLD_INTERACTIONS_FILE
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
    #: The shop's named filters (name: expression) that Personalize gets a copy of.
    filters: Mapping[str, str] = field(default_factory=dict)

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
            stage=settings.stage,
            role_arn=settings.personalize_role_arn,
            lake_uri=settings.lake,
            # A filter with a time bound is never asked of a campaign: Personalize has none.
            filters={
                name: spec.expression
                for name, spec in settings.filters.items()
                if spec.within_days is None
            },
        )


@dataclass(frozen=True)
class Imports:
    """The import jobs to wait for now, and how many interaction parts wait behind them."""

    jobs: list[str]
    left: int = 0


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

    def _find(self, listing: str, key: str, arn_field: str, name: str, **params: Any) -> str:
        """The ARN of the resource named `name` in every page of `listing`: summaries name it
        `name`, or `jobName` for jobs."""
        # The stubs type each listing's paginator by its literal name; this takes any.
        paginator: Any = self.client.get_paginator(listing)  # type: ignore[call-overload]
        for page in paginator.paginate(**params):
            for entry in page.get(key, []):
                if entry.get("name", entry.get("jobName")) == name:
                    return str(entry[arn_field])
        raise TrainingFailed(f"Personalize said {name} exists but does not list it")

    def _find_solution_version(self, solution_arn: str, name: str) -> str:
        """Solution-version summaries carry no name: describe each, newest first."""
        paginator = self.client.get_paginator("list_solution_versions")
        summaries = [
            entry
            for page in paginator.paginate(solutionArn=solution_arn)
            for entry in page.get("solutionVersions", [])
        ]
        summaries.sort(key=lambda e: e.get("creationDateTime") or 0, reverse=True)
        for entry in summaries:
            arn = entry["solutionVersionArn"]
            found = self.client.describe_solution_version(solutionVersionArn=arn)
            if found["solutionVersion"].get("name") == name:
                return arn
        raise TrainingFailed(
            f"Personalize said solution version {name} exists but does not list it"
        )

    # -- the steps, in order --------------------------------------------------------------

    def dataset_group(self) -> str:
        """The stage's dataset group."""
        name = self._name()
        arn = self._create(
            lambda: self.client.create_dataset_group(name=name),
            "datasetGroupArn",
            lambda: self._find("list_dataset_groups", "datasetGroups", "datasetGroupArn", name),
        )
        self.wait(
            "dataset group",
            arn,
            lambda: self.client.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"],
        )
        return arn

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
            lambda: self._find("list_schemas", "schemas", "schemaArn", name),
        )
        dataset_arn = self._create(
            lambda: self.client.create_dataset(
                name=name, datasetGroupArn=group_arn, datasetType=dataset_type, schemaArn=schema_arn
            ),
            "datasetArn",
            lambda: self._find(
                "list_datasets", "datasets", "datasetArn", name, datasetGroupArn=group_arn
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
        parts: Sequence[str] = (OLD_INTERACTIONS_FILE,),
    ) -> list[str]:
        """Import the export and wait: one job per dataset, and for an INCREMENTAL export of
        several interaction parts, one job per part, each after the one before it.
        `mode` is the interactions' (an incremental export's is INCREMENTAL); items and users
        are exported whole, and imported FULL. Returns every job."""
        jobs: list[str] = []
        while True:
            imports = self.start_imports(version, dataset_arns, export_prefix, mode, parts)
            for arn in imports.jobs:
                self.wait(
                    "dataset import job",
                    arn,
                    lambda arn=arn: self.client.describe_dataset_import_job(  # type: ignore[misc]
                        datasetImportJobArn=arn
                    )["datasetImportJob"],
                )
            jobs += [arn for arn in imports.jobs if arn not in jobs]
            if not imports.left:
                return jobs

    def start_imports(
        self,
        version: str,
        dataset_arns: Mapping[str, str],
        export_prefix: str,
        mode: Literal["FULL", "INCREMENTAL"] = "FULL",
        parts: Sequence[str] = (OLD_INTERACTIONS_FILE,),
    ) -> Imports:
        """Start (or find) the import jobs to wait for now, without waiting for them: one
        per dataset. `parts` are the interactions' files, relative to the export: a FULL
        import reads their folder in one job; an INCREMENTAL one takes 1 GB a job, so each
        part gets its own, started once the part before it is imported (the next call
        starts it; `Imports.left` says how many are still to start)."""
        jobs: list[str] = []
        left = 0
        for dataset_type, dataset_arn in dataset_arns.items():
            file = dataset_type.lower()
            if dataset_type != "Interactions":
                location = f"{export_prefix}/{file}.csv"
                jobs.append(self._import_job(self._name(version, file), dataset_arn, location))
            elif mode == "FULL" or len(parts) == 1:
                folder = parts[0].rpartition("/")[0]
                location = f"{export_prefix}/{folder}/" if folder else f"{export_prefix}/{parts[0]}"
                name = self._name(version, file)
                jobs.append(self._import_job(name, dataset_arn, location, mode))
            else:
                job, left = self._next_part(version, dataset_arn, export_prefix, parts)
                jobs.append(job)
        return Imports(jobs, left)

    def _next_part(
        self, version: str, dataset_arn: str, export_prefix: str, parts: Sequence[str]
    ) -> tuple[str, int]:
        """The first interactions part not imported yet (started if it was not), and how
        many parts come after it."""
        for i, part in enumerate(parts):
            name = self._name(version, "interactions", f"{i + 1}of{len(parts)}")
            arn = self._import_job(name, dataset_arn, f"{export_prefix}/{part}", "INCREMENTAL")
            job = self.client.describe_dataset_import_job(datasetImportJobArn=arn)
            status = str(job["datasetImportJob"].get("status", ""))
            if status.endswith("FAILED"):
                reason = job["datasetImportJob"].get("failureReason", "no reason given")
                raise TrainingFailed(f"Personalize dataset import job {arn} failed: {reason}")
            if status != _DONE:
                return arn, len(parts) - i - 1
        return arn, 0

    def _import_job(
        self,
        name: str,
        dataset_arn: str,
        location: str,
        mode: Literal["FULL", "INCREMENTAL"] = "FULL",
    ) -> str:
        return self._create(
            lambda: self.client.create_dataset_import_job(
                jobName=name,
                datasetArn=dataset_arn,
                dataSource={"dataLocation": f"{self.settings.lake_uri}/{location}"},
                roleArn=self.settings.role_arn,
                importMode=mode,
            ),
            "datasetImportJobArn",
            lambda: self._find(
                "list_dataset_import_jobs",
                "datasetImportJobs",
                "datasetImportJobArn",
                name,
                datasetArn=dataset_arn,
            ),
        )

    def train(
        self, version: str, group_arn: str, mode: Literal["FULL", "UPDATE"] = "FULL"
    ) -> tuple[str, dict[str, float]]:
        """The solution, a new solution version, and Personalize's offline metrics for it."""
        version_arn = self.start_solution_version(version, self.solution(group_arn), mode)
        self.wait(
            "solution version",
            version_arn,
            lambda: self.client.describe_solution_version(solutionVersionArn=version_arn)[
                "solutionVersion"
            ],
        )
        metrics = self.client.get_solution_metrics(solutionVersionArn=version_arn)["metrics"]
        return version_arn, {k: float(v) for k, v in metrics.items()}

    def solution(self, group_arn: str) -> str:
        """The stage's user-personalization solution, created once.

        Automatic training is off: CreateSolution's default (`performAutoTraining` true)
        would add a weekly training of Personalize's own, billed beside the nightly one our
        state machine starts and gates."""
        solution_name = self._name("user-personalization")
        solution_arn = self._create(
            lambda: self.client.create_solution(
                name=solution_name,
                datasetGroupArn=group_arn,
                recipeArn=self.settings.recipe_arn,
                performAutoTraining=False,
            ),
            "solutionArn",
            lambda: self._find(
                "list_solutions",
                "solutions",
                "solutionArn",
                solution_name,
                datasetGroupArn=group_arn,
            ),
        )
        self.wait(
            "solution",
            solution_arn,
            lambda: self.client.describe_solution(solutionArn=solution_arn)["solution"],
        )
        return solution_arn

    def start_solution_version(
        self, version: str, solution_arn: str, mode: Literal["FULL", "UPDATE"] = "FULL"
    ) -> str:
        """Start (or find) the training of this version's solution version; no waiting."""
        version_name = self._name(version)
        version_arn = self._create(
            lambda: self.client.create_solution_version(
                name=version_name, solutionArn=solution_arn, trainingMode=mode
            ),
            "solutionVersionArn",
            lambda: self._find_solution_version(solution_arn, version_name),
        )
        return version_arn

    def deploy(self, version_arn: str, min_tps: int = 1) -> str:
        """Create the stage's campaign on this solution version, or point it at it.

        A retry (after `TrainingPending`) finds the update it started still running:
        UpdateCampaign then raises `ResourceInUseException`, so an update already heading to
        this version is only waited for, and one heading elsewhere is waited out."""
        name = self._name()
        try:
            arn = self.client.create_campaign(
                name=name, solutionVersionArn=version_arn, minProvisionedTPS=min_tps
            )["campaignArn"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
            arn = self._find("list_campaigns", "campaigns", "campaignArn", name)
            self._update_campaign(arn, version_arn, min_tps)
        self.wait("campaign", arn, lambda: self._campaign_progress(arn, version_arn))
        return arn

    def _campaign_progress(self, arn: str, version_arn: str) -> Mapping[str, Any]:
        """The campaign, or its latest update while one runs: a campaign stays ACTIVE on its
        old solution version while an update is in progress."""
        campaign = self.client.describe_campaign(campaignArn=arn)["campaign"]
        update = campaign.get("latestCampaignUpdate")
        if update and update.get("solutionVersionArn") == version_arn:
            return update
        return campaign

    def _update_campaign(self, arn: str, version_arn: str, min_tps: int) -> None:
        campaign = self.client.describe_campaign(campaignArn=arn)["campaign"]
        update = campaign.get("latestCampaignUpdate") or {}
        status = str(update.get("status", campaign.get("status", "")))
        if update.get("solutionVersionArn") == version_arn and not status.endswith("FAILED"):
            return  # a previous attempt's update: wait for it
        if campaign.get("solutionVersionArn") == version_arn and status == _DONE:
            return  # already there
        if status != _DONE and not status.endswith("FAILED"):
            raise TrainingPending(
                f"Personalize campaign {arn} is being updated to "
                f"{update.get('solutionVersionArn')} ({status}); retry later"
            )
        try:
            self.client.update_campaign(
                campaignArn=arn, solutionVersionArn=version_arn, minProvisionedTPS=min_tps
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            raise TrainingPending(f"Personalize campaign {arn} is busy; retry later") from exc

    def not_purchased_filter(self, group_arn: str) -> str:
        """The filter the API's default `not-purchased` maps to."""
        arn = self._filter(group_arn, self._name("not-purchased"), NOT_PURCHASED)
        self.wait("filter", arn, lambda: self.describe_filter(arn))
        return arn

    def named_filters(self, group_arn: str) -> dict[str, str]:
        """A Personalize filter (`recs-<stage>-filter-<name>`) for each of the shop's named
        filters, made once; their ARNs by name, for the API's `personalize_arn`."""
        wanted = sorted(self.settings.filters.items())
        try:
            found = {
                given: self._filter(group_arn, self._name("filter", given), expression)
                for given, expression in wanted
            }
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "LimitExceededException":
                raise
            raise TrainingFailed(
                f"Personalize refused a filter ({exc.response['Error'].get('Message', '')}): "
                f"a dataset group holds 10 filters unless the quota is raised, and recs makes "
                f"{len(wanted) + 1} (not-purchased and one per named filter); drop filters, "
                "or ask AWS to raise the quota"
            ) from exc
        for given, expression in wanted:
            arn = found[given]
            described = self.wait("filter", arn, lambda arn=arn: self.describe_filter(arn))  # type: ignore[misc]
            made = described.get("filterExpression", expression)
            if made != expression:
                raise TrainingFailed(
                    f"Personalize filter {arn} holds {made!r}, but filters.{given} is now "
                    f"{expression!r}; Personalize cannot change a filter: delete it (aws "
                    f"personalize delete-filter --filter-arn {arn}) or rename the filter"
                )
        return found

    def describe_filter(self, arn: str) -> Mapping[str, Any]:
        """A filter's description, its status included."""
        return self.client.describe_filter(filterArn=arn)["filter"]

    def _filter(self, group_arn: str, name: str, expression: str) -> str:
        """Create a filter, or find the one of that name a previous run created."""
        return self._create(
            lambda: self.client.create_filter(
                name=name, datasetGroupArn=group_arn, filterExpression=expression
            ),
            "filterArn",
            lambda: self._find(
                "list_filters", "Filters", "filterArn", name, datasetGroupArn=group_arn
            ),
        )

    def event_tracker(self, group_arn: str) -> tuple[str, str]:
        """The event tracker live events go to; returns its ARN and tracking id."""
        name = self._name()
        arn = self._create(
            lambda: self.client.create_event_tracker(name=name, datasetGroupArn=group_arn),
            "eventTrackerArn",
            lambda: self._find(
                "list_event_trackers",
                "eventTrackers",
                "eventTrackerArn",
                name,
                datasetGroupArn=group_arn,
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
        arn = self.start_batch_recommendations(version, version_arn, users_input, filter_arn, k)
        self.wait(
            "batch inference job",
            arn,
            lambda: self.client.describe_batch_inference_job(batchInferenceJobArn=arn)[
                "batchInferenceJob"
            ],
        )
        return arn

    def start_batch_recommendations(
        self, version: str, version_arn: str, users_input: str, filter_arn: str | None, k: int
    ) -> str:
        """Start (or find) the batch inference job, without waiting for it."""
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
                "list_batch_inference_jobs",
                "batchInferenceJobs",
                "batchInferenceJobArn",
                name,
                solutionVersionArn=version_arn,
            ),
        )
        return arn
