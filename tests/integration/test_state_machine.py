"""The committed state machine, executed by moto's Step Functions interpreter.

moto runs the ASL (Retry, Catch, Choice, ResultSelector) itself. Lambda tasks go through
moto's Lambda API to its docker-less backend, whose invoke is pointed here at our real step
handler, in process, on a real lake on disk. That stands in for the Lambda runtime only:
an exception becomes a function error with its class name as `errorType`, as the Python
runtime reports it.
"""

from __future__ import annotations

import io
import json
import shutil
import time
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

from ingestion.generator import ShopSpec, generate_shop, write_catalog, write_raw
from ingestion.importer import import_files
from ingestion.lake import LocalLake
from orchestration import handler as step_handler
from orchestration.runs import RunRecord, run_ids
from orchestration.statemachine import FUNCTION, PATH, definition, render
from tests.etl_helpers import staples_csv

NOW = datetime(2026, 11, 2, 2, tzinfo=UTC)
pytestmark = pytest.mark.aws


def test_the_committed_asl_is_generated_from_the_steps() -> None:
    assert PATH.read_text() == render(), (
        "orchestration/statemachine.asl.json is stale: run `python -m orchestration.statemachine`"
    )
    states = definition()["States"]
    assert states["etl"]["Retry"][0]["ErrorEquals"] == ["LakeLocked"]
    assert states["gate-decision"]["Default"] == "notify"


class Machine:
    """A deployed state machine under moto, and the lake its steps work on."""

    def __init__(self, lake: LocalLake, sfn: Any, arn: str, sleeps: list[float]) -> None:
        self.lake, self.sfn, self.arn, self.sleeps = lake, sfn, arn, sleeps
        self.before: list[Any] = []  # run before each step's handler call

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        started = self.sfn.start_execution(stateMachineArn=self.arn, input=json.dumps(payload))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = self.sfn.describe_execution(executionArn=started["executionArn"])
            if found["status"] != "RUNNING":
                history = self.sfn.get_execution_history(executionArn=started["executionArn"])
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
    config: Any = {
        "stepfunctions": {"execute_state_machine": True},
        "lambda": {"use_docker": False},
    }
    with mock_aws(config=config):
        from moto.awslambda_simple.models import LambdaSimpleBackend

        box: dict[str, Machine] = {}

        def invoke(
            _self: Any, _name: str, _qualifier: Any, body: Any, _headers: Any, headers: Any
        ) -> bytes:
            event = json.loads(body)
            for hook in box["machine"].before:
                hook(event)
            try:
                answer = step_handler.handler(event)
            except Exception as exc:  # noqa: BLE001 - the Lambda runtime's own catch-all
                headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(
                    {"errorType": type(exc).__name__, "errorMessage": str(exc)}
                ).encode()
            return json.dumps(answer).encode()

        monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
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
        sfn = boto3.client("stepfunctions")
        arn = sfn.create_state_machine(
            name="recs-pipeline",
            definition=PATH.read_text().replace(FUNCTION, function),
            roleArn=role,
        )["stateMachineArn"]
        box["machine"] = found = Machine(lake, sfn, arn, sleeps)
        found.inbox = lambda: [  # type: ignore[attr-defined]
            m["Body"]
            for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        ]
        yield found


def test_a_night_runs_every_step_and_publishes(machine: Machine) -> None:
    done = machine.run({"now": "2026-11-02T02:00:00Z"})
    assert done["status"] == "SUCCEEDED"
    assert done["states"] == [
        "start", "flush", "etl", "train", "evaluate", "gate", "gate-decision", "publish", "notify"
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
