"""The Step Functions state machine, generated from `orchestration.steps.STEPS`.

`python -m orchestration.statemachine` writes `orchestration/statemachine.asl.json`, which is
committed (Terraform reads it with `templatefile`, filling in `PLACEHOLDERS`: the steps'
Lambda, the Glue job and the Batch queue and job definition); a test fails when the file and
the steps drift apart.

Shape: `start` makes the run record and says which trainer the run uses; then one Lambda
task per step, in `STEPS` order, each calling `orchestration.handler.handler`. A step only
some trainers take (`export`) sits behind a Choice on the run's trainer. With Personalize,
`export` is followed by its long jobs (dataset imports, one per dataset in a Map, again
while an incremental export has interaction parts left; the
solution version; the batch inference job): our Lambda starts each, and the machine polls
it with the aws-sdk integration (`personalize:describe...`), a Wait and a Choice, so no
Lambda sits waiting; then `train` finds them done and writes the version. A Choice after
`gate` sends a kept candidate to `notify` past `publish` (a normal night). The etl and train
steps each begin with a Choice on the run's `compute` (from `RECS_ETL_ON`, `RECS_TRAIN_ON`):
the Lambda by default, or the Glue job (etl) or an AWS Batch job on Fargate (train), each
running `orchestration.remote` and awaited with the `.sync` integration. Retry lists each
step's retryable error class names, with the local runner's attempts and backoff. Catch
sends `ModelRejected` to `notify` (the night ends there, saying why) and every other error,
`DataQualityError` and a failed Personalize job included, to `notify-failure`, which says
why and then fails the execution so an alarm can page someone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

from orchestration.runner import ATTEMPTS, BACKOFF_S
from orchestration.steps import STEPS, TRAINERS, Step

FUNCTION: Final = "${pipeline_function_arn}"
GLUE_JOB: Final = "${etl_glue_job}"
BATCH_QUEUE: Final = "${batch_job_queue}"
BATCH_DEFINITION: Final = "${batch_job_definition}"
#: What Terraform's templatefile fills in (infra/terraform/pipeline.tf).
PLACEHOLDERS: Final = (FUNCTION, GLUE_JOB, BATCH_QUEUE, BATCH_DEFINITION)
PATH: Final = Path(__file__).with_name("statemachine.asl.json")
#: Errors of the Lambda service itself, which AWS advises retrying on every Lambda task.
LAMBDA_TRANSIENT: Final = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
#: Errors after which the night ends in notify as a normal outcome, not a failure.
EXPECTED: Final = ["ModelRejected"]


#: Personalize's long jobs: the phase that starts one, the aws-sdk call that describes it,
#: the request's ARN field and the response's resource field (Step Functions' SDK
#: integrations take and give PascalCase), and how long to wait between looks.
POLLED: Final = (
    ("imports", "describeDatasetImportJob", "DatasetImportJobArn", "DatasetImportJob", 60),
    ("training", "describeSolutionVersion", "SolutionVersionArn", "SolutionVersion", 300),
    ("batch", "describeBatchInferenceJob", "BatchInferenceJobArn", "BatchInferenceJob", 120),
)
#: Personalize's throttling, worth another look.
PERSONALIZE_TRANSIENT: Final = [
    "Personalize.ThrottlingException",
    "Personalize.LimitExceededException",
]
_CARRIED: Final = {
    "run_id.$": "$.Payload.run_id",
    "trainer.$": "$.Payload.trainer",
    "compute.$": "$.Payload.compute",
}
#: Throttling and capacity errors of the Glue and Batch integrations, worth another try.
GLUE_TRANSIENT: Final = ["Glue.ConcurrentRunsExceededException", "Glue.ThrottlingException"]
BATCH_TRANSIENT: Final = ["Batch.TooManyRequestsException", "Batch.ServerException"]


def _task(payload: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": FUNCTION, "Payload": payload},
        "ResultSelector": {**_CARRIED, "outcome.$": "$.Payload.outcome"},
        "Retry": [
            {
                "ErrorEquals": LAMBDA_TRANSIENT,
                "IntervalSeconds": 2,
                "MaxAttempts": 3,
                "BackoffRate": 2.0,
            }
        ],
        **more,
    }


#: Tries of a step whose AWS job is still running: with each try's own 5-minute wait, a
#: table import has about three hours.
PENDING_ATTEMPTS: Final = 30


def _retry(errors: tuple[str, ...]) -> dict[str, Any]:
    return {
        "ErrorEquals": list(errors),
        "IntervalSeconds": int(BACKOFF_S),
        "MaxAttempts": ATTEMPTS - 1,
        "BackoffRate": 2.0,
    }


_CATCH: Final = [
    {"ErrorEquals": EXPECTED, "ResultPath": "$.error", "Next": "notify"},
    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "notify-failure"},
]


def _poll(phase: str, call: str, arn: str, resource: str, wait_s: int, then: str) -> dict[str, Any]:
    """Wait, describe through the aws-sdk integration, and go on once ACTIVE."""
    failed = {
        "Type": "Fail",
        "Error": "TrainingFailed",
        "Cause": f"a Personalize {phase} job failed: Personalize's console has its reason",
    }
    return {
        f"{phase}-wait": {"Type": "Wait", "Seconds": wait_s, "Next": f"{phase}-status"},
        f"{phase}-status": {
            "Type": "Task",
            "Comment": f"Personalize's own status of the {phase} job",
            "Resource": f"arn:aws:states:::aws-sdk:personalize:{call}",
            "Parameters": {f"{arn}.$": "$.job"},
            "ResultSelector": {"status.$": f"$.{resource}.Status"},
            "ResultPath": "$.status",
            "Retry": [
                {
                    "ErrorEquals": PERSONALIZE_TRANSIENT,
                    "IntervalSeconds": 30,
                    "MaxAttempts": 5,
                    "BackoffRate": 2.0,
                }
            ],
            "Next": f"{phase}-done",
        },
        f"{phase}-done": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.status.status", "StringEquals": "ACTIVE", "Next": then},
                {
                    "Variable": "$.status.status",
                    "StringEquals": "CREATE FAILED",
                    "Next": f"{phase}-failed",
                },
            ],
            "Default": f"{phase}-wait",
        },
        f"{phase}-failed": failed,
    }


def _personalize(then: str) -> dict[str, Any]:
    """The Personalize trainer's long jobs, each started by our Lambda and polled here."""
    states: dict[str, Any] = {}
    phases = [p[0] for p in POLLED]
    for (phase, call, arn, resource, wait_s), following in zip(
        POLLED, [*(f"personalize-{p}" for p in phases[1:]), then], strict=True
    ):
        start = _task(
            {"step": "train", "phase": phase, "run_id.$": "$.run_id"},
            Comment=f"start Personalize's {phase} job (training)",
            Catch=_CATCH,
        )
        start["Retry"].insert(0, _retry(("TrainingPending",)))
        polled = _poll(phase, call, arn, resource, wait_s, following)
        if phase == "imports":
            # One import job per dataset: each is polled in its own branch. A big
            # INCREMENTAL export's interaction parts are imported one after another: while
            # parts are left, the Lambda is asked again once these jobs are done.
            start["ResultSelector"] = {
                **_CARRIED,
                "jobs.$": "$.Payload.result.jobs",
                "more.$": "$.Payload.result.more",
            }
            start["Next"] = "imports-each"
            states["imports-each"] = {
                "Type": "Map",
                "ItemsPath": "$.jobs",
                "ItemSelector": {"job.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "imports-wait",
                    "States": {
                        **polled,
                        "imports-done": {
                            **polled["imports-done"],
                            "Choices": [
                                {**c, "Next": "imported" if c["Next"] == following else c["Next"]}
                                for c in polled["imports-done"]["Choices"]
                            ],
                        },
                        "imported": {"Type": "Succeed"},
                    },
                },
                "ResultPath": None,
                "Catch": _CATCH,
                "Next": "imports-more",
            }
            states["imports-more"] = {
                "Type": "Choice",
                "Comment": "interaction parts still to import, one job after another",
                "Choices": [
                    {"Variable": "$.more", "BooleanEquals": True, "Next": "personalize-imports"}
                ],
                "Default": following,
            }
        else:
            start["ResultSelector"] = {**_CARRIED, "job.$": "$.Payload.result.job"}
            start["Next"] = f"{phase}-wait"
            # A failed job ends in the notify that says why, as a failing step does.
            polled[f"{phase}-failed"] = {
                "Type": "Pass",
                "Parameters": {
                    "run_id.$": "$.run_id",
                    "trainer.$": "$.trainer",
                    "error": {
                        "Error": "TrainingFailed",
                        "Cause.$": f"States.Format('Personalize {phase} job {{}} failed', $.job)",
                    },
                },
                "Next": "notify-failure",
            }
            states.update(polled)
        states[f"personalize-{phase}"] = start
    return states


def _job(
    comment: str, resource: str, parameters: dict[str, Any], transient: list[str], then: str
) -> dict[str, Any]:
    """A `.sync` task that runs a step as a job: it writes its outcome to the run record, so
    the state's input goes on as it was; the service's throttling is retried."""
    return {
        "Type": "Task",
        "Comment": comment,
        "Resource": resource,
        "Parameters": parameters,
        "ResultPath": None,
        "Retry": [
            {"ErrorEquals": transient, "IntervalSeconds": 60, "MaxAttempts": 3, "BackoffRate": 2.0}
        ],
        "Catch": _CATCH,
        "Next": then,
    }


def _on_glue(step: str, then: str) -> dict[str, Any]:
    """The step as a run of the Glue job (`orchestration.remote` is its script)."""
    return _job(
        f"{step} as the Glue job, for a lake past a Lambda's 15 minutes",
        "arn:aws:states:::glue:startJobRun.sync",
        {"JobName": GLUE_JOB, "Arguments": {"--run-id.$": "$.run_id", "--step": step}},
        GLUE_TRANSIENT,
        then,
    )


def _on_batch(step: str, then: str) -> dict[str, Any]:
    """The step as an AWS Batch job on Fargate, from the pipeline's container image."""
    command = (
        "States.Array('python', '-m', 'orchestration.remote', "
        f"'--run-id', $.run_id, '--step', '{step}')"
    )
    return _job(
        f"{step} as an AWS Batch job on Fargate, for a shop past a Lambda's 10 GB",
        "arn:aws:states:::batch:submitJob.sync",
        {
            "JobName": f"recs-{step}",
            "JobQueue": BATCH_QUEUE,
            "JobDefinition": BATCH_DEFINITION,
            "ContainerOverrides": {"Command.$": command},
        },
        BATCH_TRANSIENT,
        then,
    )


#: Steps the state machine can run outside the Lambda: the `compute` value that sends a step
#: there (`RECS_ETL_ON`, `RECS_TRAIN_ON`), and the state that runs it.
REMOTE: Final = {"etl": ("glue", _on_glue), "train": ("batch", _on_batch)}


def entry(name: str) -> str:
    """The state a step begins at: a Choice of where it runs, for a step that can run remotely."""
    return f"{name}-runs-on" if name in REMOTE else name


def _step_states(step: Step, following: str | None) -> dict[str, Any]:
    """The states one step adds: its task (with its retries), and the Choices before the
    step after it (a trainer's own step, the gate's decision, a step that may run remote)."""
    if step.name == "notify":
        notify = _task({"step": "notify", "run_id.$": "$.run_id"}, End=True)
        return {"notify": {**notify, "Comment": step.does}}
    names = [s.name for s in STEPS]
    states: dict[str, Any] = {}
    nxt = entry(following) if following else None
    only = STEPS[names.index(following)].trainers if following else TRAINERS
    if following is not None and only != TRAINERS:
        # The step after is only for some trainers: a Choice on the run's trainer.
        nxt = f"{following}-for-trainer"
        states[nxt] = {
            "Type": "Choice",
            "Comment": f"{following} runs only for the {', '.join(only)} trainer",
            "Choices": [
                {"Variable": "$.trainer", "StringEquals": t, "Next": entry(following)} for t in only
            ],
            "Default": entry(names[names.index(following) + 1]),
        }
    if step.name == "export":
        nxt = "personalize-imports"
        states.update(_personalize(then=entry(following or "notify")))
    state = _task(
        {"step": step.name, "run_id.$": "$.run_id"},
        Comment=f"{step.does} ({step.owner})",
        Catch=_CATCH,
        Next="gate-decision" if step.name == "gate" else nxt,
    )
    if step.retry_on:
        state["Retry"].insert(0, _retry(step.retry_on))
    if step.pending_on:
        state["Retry"].insert(0, {
            "ErrorEquals": list(step.pending_on),
            "IntervalSeconds": 60,
            "MaxAttempts": PENDING_ATTEMPTS,
            "BackoffRate": 1.0,
        })  # fmt: skip
    states[step.name] = state
    if step.name in REMOTE:
        where, build = REMOTE[step.name]
        remote = f"{step.name}-on-{where}"
        states[entry(step.name)] = {
            "Type": "Choice",
            "Comment": f"{step.name} runs in the Lambda unless the run's compute says {where}",
            "Choices": [
                {"Variable": f"$.compute.{step.name}", "StringEquals": where, "Next": remote}
            ],
            "Default": step.name,
        }
        states[remote] = build(step.name, state["Next"])
    if step.name == "gate":
        states["gate-decision"] = {
            "Type": "Choice",
            "Comment": "a kept candidate is a normal night: publish is skipped",
            "Choices": [
                {
                    "Variable": "$.outcome",
                    "StringEquals": "approved",
                    "Next": entry(following or "notify"),
                }
            ],
            "Default": "notify",
        }
    return states


def definition() -> dict[str, Any]:
    """The state machine's ASL as a dict: both trainers, chosen by the run's setting."""
    names = [s.name for s in STEPS]
    states: dict[str, Any] = {
        "start": {
            **_task({"step": "start", "input.$": "$"}),
            "ResultSelector": _CARRIED,
            "Next": entry(names[0]),
        }
    }
    for step, following in zip(STEPS, [*names[1:], None], strict=True):
        states.update(_step_states(step, following))
    states["notify-failure"] = {
        **_task({"step": "notify", "run_id.$": "$.run_id", "error.$": "$.error"}),
        "Comment": "say which step failed and why, then fail the execution",
        "Next": "failed",
    }
    states["failed"] = {"Type": "Fail", "Error": "PipelineFailed", "Cause": "a step failed"}
    return {
        "Comment": "recs nightly pipeline, generated from orchestration/steps.py",
        "StartAt": "start",
        "States": states,
    }


def render() -> str:
    """The committed file's text."""
    return json.dumps(definition(), indent=2) + "\n"


def main() -> None:
    """Write `orchestration/statemachine.asl.json`."""
    PATH.write_text(render())
    sys.stdout.write(f"wrote {PATH}\n")


if __name__ == "__main__":
    main()
