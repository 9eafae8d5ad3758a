"""The committed state machine, executed by moto's Step Functions interpreter.

moto runs the ASL (Retry, Catch, Choice, ResultSelector) itself. Lambda tasks go through
moto's Lambda API to its docker-less backend, and Glue and Batch tasks to its Glue and
Batch; `infra.emulator` points each at what the real service runs (our step handler, or
`orchestration.remote` with the job's arguments), in process, on a real lake on disk. That
stands in for the runtimes only: an exception becomes a function error with its class name
as `errorType`, as the Python runtime reports it.
"""

from __future__ import annotations

import functools
import io
import json
import re
import shutil
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from common.lake import LocalLake
from infra.emulator import CONFIG, mend_moto, run_here
from ingestion.generator import ShopSpec, generate_shop, write_catalog, write_raw
from ingestion.importer import import_files
from orchestration import handler as step_handler
from orchestration import remote
from orchestration.runs import RunRecord, run_ids
from orchestration.statemachine import (
    BATCH_DEFINITION,
    BATCH_QUEUE,
    FUNCTION,
    GLUE_JOB,
    PATH,
    PLACEHOLDERS,
    definition,
    render,
)
from tests.etl_helpers import staples_csv

NOW = datetime(2026, 11, 2, 2, tzinfo=UTC)
pytestmark = pytest.mark.aws


def test_the_committed_asl_is_generated_from_the_steps() -> None:
    assert PATH.read_text() == render(), (
        "orchestration/statemachine.asl.json is stale: run `python -m orchestration.statemachine`"
    )
    # Terraform's templatefile fills in exactly these (infra/terraform/pipeline.tf).
    assert set(re.findall(r"\$\{[^}]*\}", PATH.read_text())) == set(PLACEHOLDERS)
    tf = (Path(__file__).parents[2] / "infra" / "terraform" / "pipeline.tf").read_text()
    for placeholder in PLACEHOLDERS:
        assert re.search(rf"\b{placeholder[2:-1]}\s+=", tf), f"pipeline.tf lacks {placeholder}"
    states = definition()["States"]
    assert states["etl-runs-on"]["Default"] == "etl"  # the Lambda, unless compute says glue
    assert states["etl-on-glue"]["Next"] == states["etl"]["Next"]
    assert states["train-on-batch"]["Next"] == states["train"]["Next"] == "evaluate"
    assert states["etl"]["Retry"][0]["ErrorEquals"] == ["LakeLocked"]
    assert states["gate-decision"]["Default"] == "notify"
    assert states["export-for-trainer"]["Default"] == "train-runs-on"  # export: Personalize only
    assert states["training-status"]["Resource"].endswith(":personalize:describeSolutionVersion")


class Machine:
    """A deployed state machine under moto, and the lake its steps work on."""

    def __init__(self, lake: LocalLake, sfn: Any, arn: str, sleeps: list[float]) -> None:
        self.lake, self.sfn, self.arn, self.sleeps = lake, sfn, arn, sleeps
        self.before: list[Any] = []  # run before each step's handler call

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        # Step Functions names an unnamed execution with a UUID; moto names it "None".
        started = self.sfn.start_execution(
            stateMachineArn=self.arn, name=uuid.uuid4().hex, input=json.dumps(payload)
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = self.sfn.describe_execution(executionArn=started["executionArn"])
            if found["status"] != "RUNNING":
                history = self.sfn.get_execution_history(executionArn=started["executionArn"])
                found["failures"] = [e for e in history["events"] if "Failed" in e["type"]]
                found["states"] = [
                    e["stateEnteredEventDetails"]["name"]
                    for e in history["events"]
                    if "stateEnteredEventDetails" in e
                ]
                return found
            time.sleep(0.2)
        history = self.sfn.get_execution_history(executionArn=started["executionArn"])
        pytest.fail(f"the execution did not finish: {history['events'][-3:]}")

    def record(self) -> RunRecord:
        return RunRecord.load(self.lake, run_ids(self.lake)[-1])


@pytest.fixture
def machine(tmp_path: Path, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Machine]:
    lake = LocalLake(tmp_path / "lake")
    shop = generate_shop(
        ShopSpec(users=300, items=120, categories=5, days=30, events=8000, seed=4, end=NOW)
    )
    write_raw(shop, lake)
    write_catalog(shop, lake)
    monkeypatch.setenv("RECS_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("RECS_STORE", str(tmp_path / "store.sqlite3"))
    monkeypatch.setenv("RECS_EVENT_LOG", str(tmp_path / "log.sqlite3"))
    monkeypatch.setenv("RECS_NOTIFY_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:recs-pipeline")
    sleeps: list[float] = []
    # The interpreter waits out each Retry's interval; record it instead of sleeping.
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    # Only the retrier's own `time` is replaced: patching `time.sleep` itself would turn
    # every polling loop in the process into a busy loop.
    monkeypatch.setattr(retrier_decl, "time", SimpleNamespace(sleep=sleeps.append))
    with mock_aws(config=CONFIG):
        box: dict[str, Any] = {}

        def step(_name: str, event: dict[str, Any]) -> Any:
            for hook in box["machine"].before:
                hook(event)
            return step_handler.handler(event)

        def glue(argv: list[str]) -> int:
            box.setdefault("glue", []).append(argv)
            return remote.main(argv, sleep=sleeps.append)

        def batch(command: list[str]) -> int:
            box.setdefault("batch", []).append(command)
            assert command[:3] == ["python", "-m", "orchestration.remote"]
            return remote.main(command[3:], sleep=sleeps.append)

        patch = functools.partial(monkeypatch.setattr, raising=False)  # one is moto's gap
        mend_moto(patch)
        run_here(patch, step, glue, batch)
        iam = boto3.client("iam")
        role = iam.create_role(
            RoleName="recs-pipeline",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("placeholder.py", "")
        function = boto3.client("lambda").create_function(
            FunctionName="recs-pipeline-step",
            Runtime="python3.12",
            Role=role,
            Handler="orchestration.handler.handler",
            Code={"ZipFile": code.getvalue()},
        )["FunctionArn"]
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        topic = sns.create_topic(Name="recs-pipeline")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queue_arn["Attributes"]["QueueArn"],
            Attributes={"RawMessageDelivery": "true"},
        )
        glue = boto3.client("glue")
        glue.create_job(
            Name="recs-etl",
            Role=role,
            Command={"Name": "glueetl", "ScriptLocation": "s3://artifacts/remote.py"},
            DefaultArguments={"--RECS_LAKE": str(tmp_path / "lake")},
        )
        batch = boto3.client("batch")
        environment = batch.create_compute_environment(
            computeEnvironmentName="recs", type="UNMANAGED", state="ENABLED", serviceRole=role
        )["computeEnvironmentArn"]
        queue_arn = batch.create_job_queue(
            jobQueueName="recs",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )["jobQueueArn"]
        job_definition = batch.register_job_definition(
            jobDefinitionName="recs-pipeline",
            type="container",
            containerProperties={"image": "recs:test", "vcpus": 1, "memory": 2048},
        )["jobDefinitionArn"]
        sfn = boto3.client("stepfunctions")
        asl = PATH.read_text()
        for placeholder, value in (
            (FUNCTION, function),
            (GLUE_JOB, "recs-etl"),
            (BATCH_QUEUE, queue_arn),
            (BATCH_DEFINITION, job_definition),
        ):
            asl = asl.replace(placeholder, value)
        arn = sfn.create_state_machine(name="recs-pipeline", definition=asl, roleArn=role)[
            "stateMachineArn"
        ]
        box["machine"] = found = Machine(lake, sfn, arn, sleeps)
        found.box = box  # type: ignore[attr-defined]
        found.inbox = lambda: [  # type: ignore[attr-defined]
            m["Body"]
            for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        ]
        yield found


def test_a_night_runs_every_step_and_publishes(machine: Machine) -> None:
    done = machine.run({"now": "2026-11-02T02:00:00Z"})
    assert done["status"] == "SUCCEEDED"
    assert done["states"] == [
        "start", "flush", "etl-runs-on", "etl", "export-for-trainer", "train-runs-on", "train",
        "evaluate", "gate", "gate-decision", "publish", "notify",
    ]  # fmt: skip
    record = machine.record()
    assert record.status == "succeeded"
    assert record.version == "20261102T020000Z"
    assert record.step("flush").status == "skipped" or record.step("flush").result["events"] == 0
    inbox = machine.inbox()  # type: ignore[attr-defined]
    assert any("published 20261102T020000Z" in m for m in inbox)


def test_a_retryable_error_is_retried_by_the_state_machine(machine: Machine) -> None:
    with ExitStack() as held:
        held.enter_context(machine.lake.lock("etl", lease_s=60))  # another ETL run

        def release(event: dict[str, Any]) -> None:
            if event.get("step") == "etl" and machine.record().step("etl").attempts == 1:
                held.close()  # it finishes before our second attempt

        machine.before.append(release)
        done = machine.run({"now": "2026-11-02T02:00:00Z"})
    assert done["status"] == "SUCCEEDED"
    assert machine.sleeps[:1] == [5.0]  # the Retry's IntervalSeconds, from the runner's backoff
    assert machine.record().step("etl").attempts == 2


def test_a_publish_waiting_on_its_table_import_is_asked_again_every_minute(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big shop's table import outlives a Lambda try: PublishPending is not a failure,
    and has its own Retry, longer than the transient errors' three tries."""
    from serving import publish as publishing
    from serving.store import PublishPending

    tries: list[int] = []
    original = publishing.publish

    def slow_import(*args: Any, **kwargs: Any) -> Any:
        tries.append(1)
        if len(tries) < 5:
            raise PublishPending("the import into recs.v1 is still IN_PROGRESS")
        return original(*args, **kwargs)

    monkeypatch.setattr(publishing, "publish", slow_import)
    done = machine.run({"now": "2026-11-02T02:00:00Z"})
    assert done["status"] == "SUCCEEDED", json.dumps(done["failures"], default=str)[:2000]
    assert len(tries) == 5
    assert machine.sleeps.count(60) == 4


def test_a_failing_step_reaches_notify_then_fails(machine: Machine) -> None:
    with machine.lake.lock("etl", lease_s=60):  # held all night: every attempt is refused
        done = machine.run({"now": "2026-11-02T02:00:00Z"})
    assert done["status"] == "FAILED"
    assert done["states"][-3:] == ["etl", "notify-failure", "failed"]
    record = machine.record()
    assert record.status == "failed"
    assert record.step("etl").attempts == 3
    inbox = machine.inbox()  # type: ignore[attr-defined]
    assert any("failed at step etl: LakeLocked" in m for m in inbox)


def test_etl_as_the_glue_job_and_train_on_batch_make_the_same_night(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECS_ETL_ON", "glue")
    monkeypatch.setenv("RECS_TRAIN_ON", "batch")
    done = machine.run({"now": "2026-11-02T02:00:00Z"})
    assert done["status"] == "SUCCEEDED", f"{done['states']} {done['failures']}"
    assert done["states"] == [
        "start", "flush", "etl-runs-on", "etl-on-glue", "export-for-trainer", "train-runs-on",
        "train-on-batch", "evaluate", "gate", "gate-decision", "publish", "notify",
    ]  # fmt: skip
    record = machine.record()
    assert record.status == "succeeded"
    assert record.step("etl").status == record.step("train").status == "succeeded"
    assert record.step("etl").result["curated"] > 0
    assert record.version == "20261102T020000Z"
    [glue_argv] = machine.box["glue"]  # type: ignore[attr-defined]
    assert glue_argv[glue_argv.index("--run-id") + 1] == record.run_id
    assert "--RECS_LAKE" in glue_argv  # Terraform's job arguments, put into the environment
    [command] = machine.box["batch"]  # type: ignore[attr-defined]
    assert command[3:] == ["--run-id", record.run_id, "--step", "train"]


def test_a_failing_glue_job_retries_inside_and_reaches_notify(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECS_ETL_ON", "glue")
    with machine.lake.lock("etl", lease_s=60):  # held all night: every attempt is refused
        done = machine.run({"now": "2026-11-02T02:00:00Z"})
    assert done["status"] == "FAILED"
    assert done["states"][-3:] == ["etl-on-glue", "notify-failure", "failed"]
    record = machine.record()
    assert record.step("etl").status == "failed"
    assert record.step("etl").attempts == 3  # the job's own retries, with the runner's backoff
    assert machine.sleeps[:2] == [5.0, 10.0]
    inbox = machine.inbox()  # type: ignore[attr-defined]
    assert any("failed at step etl: LakeLocked" in m for m in inbox)


def test_a_gate_rejection_ends_in_notify_saying_why(machine: Machine, tmp_path: Path) -> None:
    shutil.rmtree(machine.lake.root)  # a shop where no model beats popularity
    import_files(machine.lake, interactions=staples_csv(tmp_path / "staples.csv.gz"), now=NOW)
    done = machine.run({"now": "2026-11-02T02:00:00Z"})
    assert done["status"] == "SUCCEEDED"
    assert done["states"][-3:] == ["gate", "gate-decision", "notify"]
    record = machine.record()
    assert record.result("gate", "outcome") == "kept"
    assert record.step("publish").status == "pending"  # never reached
    inbox = machine.inbox()  # type: ignore[attr-defined]
    assert any("kept it as a candidate" in m and "Production is unchanged" in m for m in inbox)


def test_a_night_with_nothing_new_goes_from_train_to_notify(machine: Machine) -> None:
    """The skipped train leaves evaluate and gate skipped and no outcome: the gate's Choice
    sends the run to notify, and it succeeds (issue 27, item 8)."""
    assert machine.run({"now": "2026-11-02T02:00:00Z"})["status"] == "SUCCEEDED"
    machine.inbox()  # type: ignore[attr-defined]
    done = machine.run({"now": "2026-11-03T02:00:00Z"})
    assert done["status"] == "SUCCEEDED"
    assert done["states"][-5:] == ["train", "evaluate", "gate", "gate-decision", "notify"]
    record = machine.record()
    assert [record.step(n).status for n in ("train", "evaluate", "gate")] == ["skipped"] * 3
    inbox = machine.inbox()  # type: ignore[attr-defined]
    assert any("trained nothing: nothing new since production's version" in m for m in inbox)
    forced = machine.run({"now": "2026-11-03T02:00:00Z", "force_train": True})
    assert forced["status"] == "SUCCEEDED"
    assert machine.record().version == "20261103T020000Z"


_LONG_JOBS = {"datasetImportJob", "solutionVersion", "batchInferenceJob"}


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.title() for word in rest)


class FakePersonalize:
    """Amazon Personalize for this test only (moto has none), answering as the service does
    where recs depends on it (botocore's model and the API reference):
    - a create of a name that exists raises `ResourceAlreadyExistsException`;
    - listings are paginated; job summaries carry `jobName`, solution-version summaries no
      name at all, the others `name`; ListFilters' key is `Filters`;
    - a long job says CREATE IN_PROGRESS at its first look and ACTIVE after;
    - a campaign stays ACTIVE on its old solution version while an update runs, and
      UpdateCampaign during one raises `ResourceInUseException`;
    - a batch job writes its output into the lake, as the service writes to S3.
    Request and response shapes are pinned by the Stubber tests of `training.personalize`."""

    def __init__(self, lake: LocalLake) -> None:
        import boto3

        self.lake = lake
        self.errors = boto3.client("personalize", region_name="us-east-1").exceptions
        self.made: dict[str, dict[str, Any]] = {}  # ARN -> kind, name, params, looks
        self.calls: list[str] = []
        self.requests: dict[str, list[dict[str, Any]]] = {}
        #: Import jobs created while another on the same dataset was still running.
        self.overlaps: list[tuple[str, str]] = []

    def _raise(self, code: str, operation: str, message: str) -> None:
        error = {"Error": {"Code": code, "Message": message}}
        raise getattr(self.errors, code)(error, operation)

    def __getattr__(self, method: str) -> Any:
        def call(**params: Any) -> dict[str, Any]:
            self.calls.append(method)
            self.requests.setdefault(method, []).append(params)
            verb, _, kind = method.partition("_")
            kind = _camel(kind)
            if verb == "create":
                return self._create(kind, params, _camel(f"x_{method}")[1:])
            if verb == "describe":
                return self._describe(kind, str(next(iter(params.values()))))
            if verb == "update" and kind == "campaign":
                return self._update_campaign(params)
            if verb == "list":
                return self._list(kind, params)
            if method == "get_solution_metrics":
                return {"metrics": {"normalized_discounted_cumulative_gain_at_10": 0.9}}
            raise AttributeError(method)

        return call

    def get_paginator(self, listing: str) -> Any:
        fake = self

        class OnePage:
            def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
                yield getattr(fake, listing)(**params)

        return OnePage()

    def _create(self, kind: str, params: dict[str, Any], operation: str) -> dict[str, Any]:
        name = params.get("name") or params.get("jobName")
        if any(r["kind"] == kind and r["name"] == name for r in self.made.values()):
            self._raise("ResourceAlreadyExistsException", operation, f"{kind} {name} exists")
        if kind == "solutionVersion":  # named by the solution and an id, not the name
            arn = f"{params['solutionArn']}/{len(self.made):08x}"
        else:
            arn = f"arn:aws:personalize:us-east-1:123456789012:{kind}/{name}"
        if kind == "datasetImportJob":
            # Recorded, not refused: the quotas page does not say whether one dataset takes
            # two import jobs at once; recs never asks it to.
            self.overlaps += [
                (m["name"], name)
                for m in self.made.values()
                if m["kind"] == kind
                and m["params"]["datasetArn"] == params["datasetArn"]
                and m["looks"] < 2
            ]
        self.made[arn] = {"kind": kind, "name": name, "params": params, "looks": 0}
        if kind == "batchInferenceJob":
            self._batch_output(params)
        return {f"{kind}Arn": arn}

    def _describe(self, kind: str, arn: str) -> dict[str, Any]:
        made = self.made[arn]
        made["looks"] += 1
        first = kind in _LONG_JOBS and made["looks"] == 1
        status = "CREATE IN_PROGRESS" if first else "ACTIVE"
        found = {"name": made["name"], f"{kind}Arn": arn, "status": status, "trackingId": "tid-1"}
        if kind in {"datasetImportJob", "batchInferenceJob"}:
            found["jobName"] = found.pop("name")
        if kind == "campaign":
            found["solutionVersionArn"] = made["params"]["solutionVersionArn"]
            if (update := made.get("update")) is not None:
                update["looks"] += 1
                update["status"] = "CREATE IN_PROGRESS" if update["looks"] == 1 else "ACTIVE"
                found["latestCampaignUpdate"] = {
                    "solutionVersionArn": update["solutionVersionArn"], "status": update["status"]
                }  # fmt: skip
        return {kind: found}

    def _update_campaign(self, params: dict[str, Any]) -> dict[str, Any]:
        made = self.made[params["campaignArn"]]
        if made.get("update", {}).get("status", "ACTIVE") != "ACTIVE":
            self._raise("ResourceInUseException", "UpdateCampaign", "campaign is updating")
        made["update"] = {"solutionVersionArn": params["solutionVersionArn"], "looks": 0,
                          "status": "CREATE PENDING"}  # fmt: skip
        return {"campaignArn": params["campaignArn"]}

    def _list(self, plural: str, params: dict[str, Any]) -> dict[str, Any]:
        kind = plural[:-1]
        params = {k: v for k, v in params.items() if k not in {"nextToken", "maxResults"}}
        summaries = []
        for arn, made in self.made.items():
            if made["kind"] != kind or any(made["params"].get(k) != v for k, v in params.items()):
                continue
            summary: dict[str, Any] = {f"{kind}Arn": arn, "status": "ACTIVE"}
            if kind in {"datasetImportJob", "batchInferenceJob"}:
                summary["jobName"] = made["name"]
            elif kind != "solutionVersion":
                summary["name"] = made["name"]
            summaries.append(summary)
        return {"Filters" if plural == "filters" else plural: summaries}

    def _batch_output(self, params: dict[str, Any]) -> None:
        users = Path(params["jobInput"]["s3DataSource"]["path"]).read_text().splitlines()
        key = params["jobOutput"]["s3DataDestination"]["path"].removeprefix("s3://shop-lake/prod/")
        lines = [
            json.dumps(
                {
                    "input": json.loads(user),
                    "output": {"recommendedItems": ["I1", "I2", "I3"], "scores": [0.3, 0.2, 0.1]},
                    "error": None,
                }
            )
            for user in users
        ]
        self.lake.write_bytes(f"{key}users.json.out", ("\n".join(lines) + "\n").encode())


class StepFunctionsSdk:
    """What Step Functions' aws-sdk integration does in front of a client: PascalCase
    parameters and response fields over the service's camelCase API."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def _pascal(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k[:1].upper() + k[1:]: cls._pascal(v) for k, v in value.items()}
        return value

    def __getattr__(self, method: str) -> Any:
        def call(**params: Any) -> Any:
            camel = {k[:1].lower() + k[1:]: v for k, v in params.items()}
            return self._pascal(getattr(self.client, method)(**camel))

        return call


def _on_personalize(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> tuple[FakePersonalize, list[int]]:
    """The machine's nights with the Personalize trainer, against the fake; Wait states'
    seconds are recorded in the list returned."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as sdk,
    )
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

    from training.personalize import PersonalizeSettings, PersonalizeTrainer

    fake = FakePersonalize(machine.lake)
    waits: list[int] = []
    monkeypatch.setenv("RECS_TRAINER", "personalize")
    monkeypatch.setenv("RECS_STAGE", "prod")
    monkeypatch.setenv("RECS_PERSONALIZE_ROLE_ARN", "arn:aws:iam::123456789012:role/p")
    # Personalize reads and writes S3; this lake is a folder (the S3 path of the same code
    # is tested in test_personalize_version), so the S3 URI Personalize is given is a name.
    monkeypatch.setattr(
        PersonalizeSettings,
        "from_settings",
        classmethod(lambda cls, s: cls(stage="prod", role_arn="r", lake_uri="s3://shop-lake/prod")),
    )
    monkeypatch.setattr(PersonalizeTrainer, "client", property(lambda _self: fake))
    original = sdk.boto_client_for
    monkeypatch.setattr(
        sdk,
        "boto_client_for",
        lambda region, service, state_credentials=None: (
            StepFunctionsSdk(fake)
            if service == "personalize"
            else original(region, service, state_credentials)
        ),
    )
    # A Wait state's seconds are recorded, not slept.
    monkeypatch.setattr(
        wait_function.WaitFunction,
        "_wait_interval",
        lambda _self, env, wait_seconds: waits.append(wait_seconds),
    )
    return fake, waits


def test_the_personalize_branch_starts_polls_and_publishes(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, waits = _on_personalize(machine, monkeypatch)
    done = machine.run({"now": "2026-11-02T02:00:00Z"})
    assert done["status"] == "SUCCEEDED", json.dumps(done["failures"], default=str)[:3000]
    states = done["states"]
    assert states[:6] == ["start", "flush", "etl-runs-on", "etl", "export-for-trainer", "export"]
    # Each long job: started by our Lambda, then polled until ACTIVE, looked at twice.
    for phase in ("training", "batch"):
        at = states.index(f"personalize-{phase}")
        assert states[at + 1 : at + 7] == [f"{phase}-wait", f"{phase}-status", f"{phase}-done"] * 2
    assert "imports-each" in states
    assert states[-7:] == [
        "train-runs-on",
        "train",
        "evaluate",
        "gate",
        "gate-decision",
        "publish",
        "notify",
    ]
    assert sorted(set(waits)) == [60, 120, 300]
    record = machine.record()
    assert record.status == "succeeded"
    assert record.step("train").result["version"] == "20261102T020000Z"
    manifest = json.loads(machine.lake.read_bytes("models/20261102T020000Z/manifest.json"))
    assert (manifest["backend"], manifest["status"]) == ("personalize", "approved")
    production = json.loads(machine.lake.read_bytes("models/production.json"))
    assert production["campaign"].endswith("campaign/recs-prod")
    # Each phase asked again and found what the first made: one of each, none made twice.
    assert fake.calls.count("create_solution_version") >= 2
    made = [m["kind"] for m in fake.made.values()]
    assert made.count("solutionVersion") == made.count("batchInferenceJob") == 1
    assert made.count("datasetImportJob") == made.count("dataset") == 3
    assert made.count("solution") == 1
    # The first import is whole; once its jobs finished, the next export starts after it.
    from etl.personalize import imported_through

    imports = fake.requests["create_dataset_import_job"]
    assert {r["importMode"] for r in imports} == {"FULL"}
    assert str(imported_through(machine.lake)) == "2026-11-02"  # the shop's last day
    assert all(r["performAutoTraining"] is False for r in fake.requests["create_solution"])
    inbox = machine.inbox()  # type: ignore[attr-defined]
    assert any("published 20261102T020000Z" in m for m in inbox)


def test_a_big_incremental_night_imports_its_parts_one_job_after_another(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An INCREMENTAL import job takes 1 GB of interactions: the export cuts a big day into
    parts, and the machine comes back to the import phase once each part's job is done."""
    from datetime import date

    from etl.personalize import imported_through, mark_imported

    fake, _ = _on_personalize(machine, monkeypatch)
    mark_imported(machine.lake, date(2026, 10, 20))  # an earlier night imported up to here
    monkeypatch.setenv("RECS_PERSONALIZE_PART_MB", "0.03")  # 30 KB: three parts here
    done = machine.run({"now": "2026-11-02T02:00:00Z"})
    assert done["status"] == "SUCCEEDED", json.dumps(done["failures"], default=str)[:3000]
    states = done["states"]
    assert states.count("personalize-imports") == states.count("imports-more") == 3
    record = machine.record()
    assert (record.step("export").result["mode"], record.step("export").result["parts"]) == (
        "INCREMENTAL",
        3,
    )
    imports = {r["jobName"]: r for r in fake.requests["create_dataset_import_job"]}
    parts = sorted(n for n in imports if "-interactions-" in n)
    assert [n.rsplit("-", 1)[1] for n in parts] == ["1of3", "2of3", "3of3"]
    assert {imports[n]["importMode"] for n in parts} == {"INCREMENTAL"}
    assert [imports[n]["dataSource"]["dataLocation"].rsplit("/", 1)[1] for n in parts] == [
        "part-00000.csv",
        "part-00001.csv",
        "part-00002.csv",
    ]
    assert fake.overlaps == []  # each part's job began after the one before it was done
    assert str(imported_through(machine.lake)) == "2026-11-02"  # only once all three are in
