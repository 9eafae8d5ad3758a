"""The Step Functions state machine, generated from `orchestration.steps.STEPS`.

`python -m orchestration.statemachine` writes `orchestration/statemachine.asl.json`, which is
committed (Terraform reads it with `templatefile`, filling in `${pipeline_function_arn}`);
a test fails when the file and the steps drift apart.

Shape: `start` makes the run record; then one Lambda task per step of the local trainer, in
`STEPS` order, each calling `orchestration.handler.handler`. A Choice after `gate` sends a
kept candidate to `notify` past `publish` (a normal night). Retry lists each step's
retryable error class names, with the local runner's attempts and backoff. Catch sends
`ModelRejected` to `notify` (the night ends there, saying why) and every other error,
`DataQualityError` included, to `notify-failure`, which says why and then fails the
execution so an alarm can page someone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

from orchestration.runner import ATTEMPTS, BACKOFF_S
from orchestration.steps import steps_for

FUNCTION: Final = "${pipeline_function_arn}"
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


def _task(payload: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": FUNCTION, "Payload": payload},
        "ResultSelector": {"run_id.$": "$.Payload.run_id", "outcome.$": "$.Payload.outcome"},
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


def definition(trainer: str = "local") -> dict[str, Any]:
    """The state machine's ASL as a dict."""
    steps = steps_for(trainer)
    names = [s.name for s in steps]
    states: dict[str, Any] = {
        "start": {
            **_task({"step": "start", "input.$": "$"}),
            "ResultSelector": {"run_id.$": "$.Payload.run_id"},
            "Next": names[0],
        }
    }
    catch = [
        {"ErrorEquals": EXPECTED, "ResultPath": "$.error", "Next": "notify"},
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "notify-failure"},
    ]
    for step, following in zip(steps, [*names[1:], None], strict=True):
        if step.name == "notify":
            states["notify"] = _task({"step": "notify", "run_id.$": "$.run_id"}, End=True)
            states["notify"]["Comment"] = step.does
            continue
        state = _task(
            {"step": step.name, "run_id.$": "$.run_id"},
            Comment=f"{step.does} ({step.owner})",
            Catch=catch,
            Next="gate-decision" if step.name == "gate" else following,
        )
        if step.retry_on:
            state["Retry"].insert(
                0,
                {
                    "ErrorEquals": list(step.retry_on),
                    "IntervalSeconds": int(BACKOFF_S),
                    "MaxAttempts": ATTEMPTS - 1,
                    "BackoffRate": 2.0,
                },
            )
        states[step.name] = state
        if step.name == "gate":
            states["gate-decision"] = {
                "Type": "Choice",
                "Comment": "a kept candidate is a normal night: publish is skipped",
                "Choices": [
                    {"Variable": "$.outcome", "StringEquals": "approved", "Next": following}
                ],
                "Default": "notify",
            }
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
