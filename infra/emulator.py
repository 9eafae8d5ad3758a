"""moto, made to run what recs deploys: shared by `make aws-local` and the state machine tests.

moto speaks the AWS APIs, and its Step Functions interpreter runs our ASL, but it runs no
Lambda without Docker, and records Glue job runs and Batch jobs without running them. Here
each runs what the real service would run, in this process:
- a Lambda invocation calls the function's handler (`lambda_call`); an event source
  mapping's record (moto hands each record put to a stream to the mapped function, inside
  the PutRecords call) goes to `mapped_call`, which queues it for delivery in batches, as
  the mapping polls the stream on AWS (running it inside the put would call back into the
  request that is still being answered);
- a Glue job run calls its script with the run's arguments (`glue_call`), and a Batch job
  its container command (`batch_call`); a non-zero exit fails the run or job.

It also fills gaps of moto 5.2.5, each found by running our Terraform or ASL on it:
- the server has no ValidateStateMachineDefinition, which the AWS provider calls before
  creating a state machine: it is answered by the ASL parser that runs executions;
- nor ListStateMachineVersions, which the provider reads after: we publish no versions, so
  the answer is none;
- the Glue `.sync` integration ends by interrupting a callback endpoint it only makes for
  integrations that take a task token, so every Glue task fails with "'NoneType' object has
  no attribute 'interrupt_all'";
- the service integrations' request and response casing is a no-op, so Batch's PascalCase
  `Parameters` reach botocore as they are; the botocore model maps them as AWS does.

Every patch goes through `patch` (pytest's `monkeypatch.setattr`, or `setattr` for a
process that is the emulator), so a test undoes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moto.core.config import DefaultConfig

Patch = Callable[[Any, str, Any], None]
#: A function's name and event, to its answer (raising is the function's error).
LambdaCall = Callable[[str, dict[str, Any]], Any]
#: A job's arguments or command, to its exit status.
JobCall = Callable[[list[str]], int]
#: A function's name and one mapped record's event, queued for delivery.
MappedCall = Callable[[str, dict[str, Any]], None]


def mend_moto(patch: Patch) -> None:
    """The gaps above."""
    import botocore.session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        resource,
        state_task_service_batch,
        state_task_service_glue,
    )
    from moto.stepfunctions.responses import StepFunctionResponse

    def validate_state_machine_definition(self: Any) -> str:
        from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

        try:
            AmazonStateLanguageParser.parse(self._get_param("definition"))
        except Exception as exc:  # noqa: BLE001 - any parse error is the diagnostic
            found = {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED", "message": str(exc)}
            return json.dumps({"result": "FAIL", "diagnostics": [found], "truncated": False})
        return json.dumps({"result": "OK", "diagnostics": [], "truncated": False})

    def list_state_machine_versions(_self: Any) -> str:
        return json.dumps({"stateMachineVersions": []})

    patch(
        StepFunctionResponse, "validate_state_machine_definition", validate_state_machine_definition
    )
    patch(StepFunctionResponse, "list_state_machine_versions", list_state_machine_versions)
    patch(
        state_task_service_glue,
        "_SUPPORTED_INTEGRATION_PATTERNS",
        {resource.ResourceCondition.Sync, resource.ResourceCondition.WaitForTaskToken},
    )

    def operation(self: Any, action: str | None) -> Any:
        name = self._get_boto_service_action(action)
        model = botocore.session.get_session().get_service_model("batch")
        return model.operation_model("".join(word.title() for word in name.split("_")))

    # The hooks' own signatures: (parameters | response, boto_service_name, service_action_name).
    def to_boto(
        self: Any, parameters: Any, boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        self._to_boto_request(parameters, operation(self, service_action_name).input_shape)

    def from_boto(
        self: Any, response: Any, boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        self._from_boto_response(response, operation(self, service_action_name).output_shape)

    batch = state_task_service_batch.StateTaskServiceBatch
    patch(batch, "_normalise_parameters", to_boto)
    patch(batch, "_normalise_response", from_boto)


def run_here(
    patch: Patch,
    lambda_call: LambdaCall,
    glue_call: JobCall,
    batch_call: JobCall,
    mapped_call: MappedCall | None = None,
) -> None:
    """Lambda invocations, Glue job runs and Batch jobs run in this process."""
    from moto.awslambda.models import LambdaFunction
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.batch_simple.models import BatchSimpleBackend
    from moto.glue.models import FakeJob

    def invoke(
        _self: Any, name: str, _qualifier: Any, body: Any, _headers: Any, answer: Any
    ) -> bytes:
        try:
            result = lambda_call(name.rsplit(":", 1)[-1], json.loads(body))
        except Exception as exc:  # noqa: BLE001 - the Lambda runtime's own catch-all
            # As the Python runtime reports an exception: its class name is the error type.
            answer["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode()
        return json.dumps(result).encode()

    def mapped(self: Any, body: Any, _headers: Any, _answer: Any) -> bytes:
        """An event source mapping's invocation (moto calls the function, not the backend)."""
        if mapped_call is not None:
            mapped_call(self.function_name, json.loads(body))
        return b"{}"

    start_job_run = FakeJob.start_job_run

    def glue_run(self: Any, **params: Any) -> str:
        run_id = start_job_run(self, **params)
        run = next(r for r in self.job_runs if r.job_run_id == run_id)
        if glue_call([word for pair in run.arguments.items() for word in pair]):
            run.status = "FAILED"
        return str(run_id)

    finish = BatchSimpleBackend._mark_job_as_finished

    def batch_run(self: Any, include_start_attempt: bool, job: Any) -> None:
        code = batch_call(list(job.container_overrides["command"]))
        finish(self, include_start_attempt, job)
        if code:
            job._mark_stopped(success=False)

    patch(LambdaSimpleBackend, "invoke", invoke)
    patch(LambdaFunction, "invoke", mapped)
    patch(FakeJob, "start_job_run", glue_run)
    patch(BatchSimpleBackend, "_mark_job_as_finished", batch_run)


#: moto's settings for the above: executions run, and Lambda and Batch need no Docker.
CONFIG: DefaultConfig = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
    "batch": {"use_docker": False},
}
