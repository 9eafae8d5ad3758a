"""`make aws-local`: the AWS path on a local emulator, from Terraform to answers.

1. Starts moto's server on loopback.
2. Applies `infra/terraform` to it (a copy, with the provider's endpoints pointed there), and
   prints what it created.
3. Runs the AWS path with the AWS adapters, each setting taken from a Terraform output:
   - `recs generate`: history to the S3 lake, the last day through Kinesis;
   - Firehose: moto does not read a Kinesis source, so the stream's records are put to the
     delivery stream directly, and it lands them in the lake's raw zone;
   - the nightly state machine, started as its schedule would start it: the etl step as the
     Glue job (Glue partitions), then train, evaluate, gate and publish (DynamoDB) in the
     pipeline Lambda, and notify to SNS;
   - the API's Lambda handler (`serving.handler.handler`) answers health, personalized and
     related from DynamoDB;
   - the Kinesis consumer's handler (`ingestion.consumer.handler`), invoked by the stream's
     event source mapping for every record put (by `recs generate` and by the API), fills
     the history table, and a personalized answer after a posted event is realtime.

moto runs no Lambda without Docker and runs no Glue job: `infra.emulator` runs each in this
process, with the function's environment or the job's arguments as Terraform declared
them, and fills the gaps of moto's it found (ValidateStateMachineDefinition among them).
Each runs with only what it declares, plus what its runtime gives any process (`RUNTIME`:
credentials, region, the emulator's endpoint): none of this runner's settings reach it, so a
setting Terraform forgot fails here as it would on AWS. Once the stack is applied, IAM is
enforced (`infra.iam_emulation`): each function and job signs with its own role's keys, the
state machine's calls are judged against its role, and a missing action or resource fails
the run as AWS would deny it.

What the emulator run leaves out, and why:
- the pipeline's container image: the Lambda is declared with an image tag that was never
  pushed (moto does not pull it); its handler runs here from this checkout;
- AWS Batch (`batch_subnet_ids` unset): the train-on-Batch branch runs under moto in
  tests/orchestration/test_statemachine.py;
- the lake's TLS-only policy (`require_tls=false`): the emulator speaks plain HTTP.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any, Final

from infra.iam_emulation import Enforcer, enforce

ROOT: Final = Path(__file__).resolve().parents[1]
PLUGINS: Final = Path(os.environ.get("TF_PLUGIN_DIR", "/opt/tf-plugins"))
REGION: Final = "us-east-1"
#: Every service the Terraform declares resources in.
SERVICES: Final = (
    "apigatewayv2", "athena", "batch", "cloudwatch", "dynamodb", "ecr", "firehose", "glue",
    "iam", "kinesis", "kms", "lambda", "logs", "s3", "scheduler", "sfn", "sns", "sqs", "sts",
)  # fmt: skip
#: The pipeline image's tag: declared, never pushed (the handler runs from this checkout).
IMAGE_TAG: Final = "emulator"
NOW: Final = "2026-11-01T02:00:00Z"
SHOP: Final = (
    "--users", "300", "--items", "120", "--categories", "5", "--days", "20",
    "--events", "8000", "--seed", "4", "--end", "2026-11-01", "--live-days", "1",
)  # fmt: skip


def say(line: str) -> None:
    """One progress line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _override(endpoint: str) -> str:
    endpoints = "\n".join(f'    {s} = "{endpoint}"' for s in SERVICES)
    return f"""provider "aws" {{
  region                      = var.region
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  endpoints {{
{endpoints}
  }}
}}
"""


def _terraform(folder: Path, *args: str) -> str:
    """One terraform command in `folder`; its standard output, or exit saying what failed."""
    terraform = shutil.which("terraform")
    if terraform is None:
        raise SystemExit("make aws-local needs terraform on PATH")
    done = subprocess.run(  # noqa: S603 - terraform from PATH, our own arguments
        [terraform, *args], cwd=folder, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"terraform {args[0]} failed:\n{done.stdout[-4000:]}{done.stderr}")
    return done.stdout


def apply(endpoint: str, work: Path) -> dict[str, Any]:
    """Apply a copy of the Terraform to the emulator; return its outputs."""
    folder = work / "infra" / "terraform"
    skip = shutil.ignore_patterns(".terraform*", "*.tfstate*")
    shutil.copytree(ROOT / "infra" / "terraform", folder, ignore=skip)
    shutil.copytree(ROOT / "orchestration", work / "orchestration")  # the ASL pipeline.tf reads
    (work / "dist").mkdir()
    shutil.copy(ROOT / "dist" / "recs-api-arm64.zip", work / "dist")
    from orchestration.package import build_glue

    glue = work / "dist" / "glue"
    build_glue(glue)  # the Glue job's wheel and modules, as `make glue-artifacts`
    (folder / "emulator_override.tf").write_text(_override(endpoint))
    _terraform(folder, "init", "-input=false", f"-plugin-dir={PLUGINS}")
    say("terraform apply (to the emulator)...")
    started = time.monotonic()
    _terraform(
        folder, "apply", "-auto-approve", "-input=false", "-no-color",
        "-var", f"region={REGION}", "-var", "require_tls=false",
        "-var", f"pipeline_image_tag={IMAGE_TAG}", "-var", f"glue_artifacts={glue}",
        "-var", "etl_on=glue",
    )  # fmt: skip
    listed = _terraform(folder, "state", "list").splitlines()
    resources = [line for line in listed if not line.startswith("data.")]
    say(f"  {len(resources)} resources created in {time.monotonic() - started:.0f} s")
    for line in resources:
        say(f"    {line}")
    return {k: v["value"] for k, v in json.loads(_terraform(folder, "output", "-json")).items()}


def recs(*args: str) -> None:
    """One `recs` command, as a user would type it."""
    say(f"$ recs {' '.join(args)}")
    done = subprocess.run(  # noqa: S603 - our own command, our own arguments
        [str(ROOT / ".venv" / "bin" / "recs"), *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)
    for line in done.stdout.strip().splitlines()[-3:]:
        say(f"  {line}")


def stream_records(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every record on the stream, as a Kinesis event source mapping would hand them over."""
    records = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            got = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            records.extend(got["Records"])
            iterator = got.get("NextShardIterator") if got["Records"] else None
    return records


def api(
    function: str, method: str, path: str, query: str = "", body: str | None = None
) -> dict[str, Any]:
    """The API Lambda's handler, with an API Gateway HTTP API (2.0) event and only the
    function's declared environment."""
    from serving.handler import handler
    from serving.idempotency import LocalRequestContext

    event = json.loads((ROOT / "tests" / "events" / "apigw_health.json").read_text())
    event.update(rawPath=path, rawQueryString=query)
    event["requestContext"]["http"].update(method=method, path=path)
    if query:
        event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if body is not None:
        event["body"] = body
        event["headers"]["content-type"] = "application/json"
    with run_as(function, *declared(function)):
        answer: dict[str, Any] = handler(event, LocalRequestContext())
    say(f"$ {method} {path}{'?' + query if query else ''} -> {answer['statusCode']}")
    say(f"  {answer['body'][:220]}")
    return {"status": answer["statusCode"], "body": json.loads(answer["body"])}


#: What a Lambda or Glue runtime gives every process beside the declared variables: the
#: role's credentials and the region (AWS_*), and here the emulator's endpoint and port.
RUNTIME: Final = ("PATH", "HOME", "LANG", "TMPDIR", "MOTO_PORT")


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """The process environment as a function or job would see it: only `variables` and
    `RUNTIME` (the AWS_* ones included), not this runner's own settings; restored after."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(
        {k: v for k, v in saved.items() if k.startswith("AWS_") or k in RUNTIME} | variables
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


#: What each function printed (its CloudWatch Logs stream on AWS: metrics in the embedded
#: format, log lines), kept off this transcript and counted at the end.
LOGS: dict[str, list[str]] = {}


#: Invocations per function, and what the Kinesis consumer wrote and could not.
INVOKED: Counter[str] = Counter()
WRITTEN: Counter[str] = Counter()
FAILED: Counter[str] = Counter()
#: IAM on the emulator (`infra.iam_emulation`): on once the stack is applied.
IAM: Final = Enforcer()


def role_credentials(role_arn: str) -> dict[str, str]:
    """The role's keys, as the Lambda or Glue service gets them by assuming it."""
    import boto3

    with IAM.off():  # the service assumes the role, under the role's trust policy
        found = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="aws-local")
    keys = found["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"],
        "AWS_SESSION_TOKEN": keys["SessionToken"],
    }


@contextmanager
def run_as(function: str, role_arn: str, variables: dict[str, str]) -> Iterator[None]:
    """Run a handler as `function`: its role's credentials, its own environment, its output
    to its own log."""
    import boto3

    buffer = io.StringIO()
    session, boto3.DEFAULT_SESSION = boto3.DEFAULT_SESSION, None  # clients made anew, as it
    try:
        with environment(variables | role_credentials(role_arn)), redirect_stdout(buffer):
            yield
    finally:
        boto3.DEFAULT_SESSION = session
        LOGS.setdefault(function, []).extend(buffer.getvalue().splitlines())


def declared(function: str) -> tuple[str, dict[str, str]]:
    """A Lambda function's role and the variables Terraform declared for it."""
    import boto3

    config = boto3.client("lambda").get_function_configuration(FunctionName=function)
    return config["Role"], dict(config.get("Environment", {}).get("Variables", {}))


def lambda_call(name: str, event: dict[str, Any]) -> Any:
    """A Lambda invocation: the function's handler, with its environment from Terraform."""
    import boto3

    from serving.idempotency import LocalRequestContext

    config = boto3.client("lambda").get_function_configuration(FunctionName=name)
    image = config.get("ImageConfigResponse", {}).get("ImageConfig", {})
    dotted = image["Command"][0] if image.get("Command") else config["Handler"]
    module, _, function = dotted.rpartition(".")
    handler = getattr(importlib.import_module(module), function)
    variables = dict(config.get("Environment", {}).get("Variables", {}))
    with run_as(name, config["Role"], variables):
        answer = handler(event, LocalRequestContext())
    INVOKED[name] += 1
    if isinstance(answer, dict) and isinstance(answer.get("written"), int):
        WRITTEN[name] += answer["written"]
        FAILED[name] += len(answer.get("batchItemFailures") or [])
    return answer


#: Records the event source mappings took off the streams, per function, not yet delivered.
MAPPED: dict[str, list[dict[str, Any]]] = {}


def mapped_call(name: str, event: dict[str, Any]) -> None:
    """One record an event source mapping took off a stream: queued for `deliver`."""
    MAPPED.setdefault(name, []).extend(event["Records"])


def deliver(batch_size: int = 100) -> None:
    """Invoke each mapped function with its queued records, in the mapping's batches, oldest
    first, as Lambda's poller does between puts."""
    for name, records in MAPPED.items():
        while records:
            batch, records[:] = records[:batch_size], records[batch_size:]
            lambda_call(name, {"Records": batch})


def glue_call(argv: list[str]) -> int:
    """A Glue job run: its script, `orchestration.remote`, with the run's arguments."""
    from orchestration import remote

    given = dict(zip(argv[::2], argv[1::2], strict=False))
    settings = sorted(name for name in given if name.startswith("--RECS_"))
    say(
        f"  Glue job run: orchestration.remote --run-id {given.get('--run-id')} --step "
        f"{given.get('--step')}, with {len(settings)} settings from the job's arguments"
    )
    import boto3

    glue = boto3.client("glue")
    (job,) = glue.list_jobs()["JobNames"]
    role = glue.get_job(JobName=job)["Job"]["Role"]
    # The job's --RECS_* arguments stay inside the job.
    with run_as(job, role, {}):
        return remote.main(argv)


def batch_call(command: list[str]) -> int:
    """No Batch here (no subnets); a job would be a mistake in the Terraform's settings."""
    say(f"  unexpected Batch job: {command}")
    return 1


def run_pipeline(out: dict[str, Any]) -> None:
    """The nightly state machine, started as its schedule starts it; its summary from SNS."""
    import boto3

    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    inbox = sqs.create_queue(QueueName="pipeline-summaries")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=out["notify_topic_arn"], Protocol="sqs",
        Endpoint=inbox_arn["Attributes"]["QueueArn"], Attributes={"RawMessageDelivery": "true"},
    )  # fmt: skip
    sfn = boto3.client("stepfunctions")
    say(f'$ aws stepfunctions start-execution --input \'{{"now": "{NOW}"}}\'')
    started = sfn.start_execution(
        stateMachineArn=out["pipeline_state_machine_arn"], input=json.dumps({"now": NOW})
    )
    deadline = time.monotonic() + 600
    while (done := sfn.describe_execution(executionArn=started["executionArn"]))["status"] == (
        "RUNNING"
    ):
        if time.monotonic() > deadline:
            raise SystemExit("the state machine did not finish in 10 minutes")
        time.sleep(0.5)
    history = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    states = [
        e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e
    ]
    say(f"  {done['status']}: {' -> '.join(states)}")
    if done["status"] != "SUCCEEDED":
        failures = [e for e in history if "Failed" in e["type"]]
        raise SystemExit(f"the state machine failed: {failures}")
    for message in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", []):
        say("  SNS: " + message["Body"].splitlines()[0])
    glue = boto3.client("glue")
    tables = glue.get_tables(DatabaseName=out["glue_database"])["TableList"]
    partitions = {
        t["Name"]: len(
            glue.get_partitions(DatabaseName=out["glue_database"], TableName=t["Name"])[
                "Partitions"
            ]
        )
        for t in tables
    }
    say(
        f"  Glue database {out['glue_database']}: "
        + ", ".join(f"{k} ({v} partitions)" for k, v in sorted(partitions.items()))
    )
    # The publish swapped in a table of its own (RECS_STORE_PUBLISH=import): say which.
    dynamodb = boto3.client("dynamodb")
    base = out["online_store"].removeprefix("dynamodb://")
    pointer = dynamodb.get_item(TableName=base, Key={"pk": {"S": "_pointer"}, "sk": {"S": "live"}})
    table = pointer["Item"]["table"]["S"]
    rows = dynamodb.describe_table(TableName=table)["Table"]["ItemCount"]
    say(f"  Online store: the pointer in {base} names {table}, {rows:,} rows by ImportTable")


def operate_with_iam(out: dict[str, Any]) -> None:
    """From here on, IAM is enforced: this runner acts as an administrator (an IAM user of
    its own), each function and job as its own role, the state machine as its role."""
    import boto3

    iam = boto3.client("iam")
    iam.create_user(UserName="aws-local-operator")
    admin = {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}  # fmt: skip
    iam.put_user_policy(
        UserName="aws-local-operator", PolicyName="admin", PolicyDocument=json.dumps(admin)
    )
    keys = iam.create_access_key(UserName="aws-local-operator")["AccessKey"]
    os.environ.update(
        AWS_ACCESS_KEY_ID=keys["AccessKeyId"], AWS_SECRET_ACCESS_KEY=keys["SecretAccessKey"]
    )
    boto3.DEFAULT_SESSION = None
    machine = boto3.client("stepfunctions").describe_state_machine(
        stateMachineArn=out["pipeline_state_machine_arn"]
    )
    IAM.state_machine_role = machine["roleArn"]
    IAM.on = True
    say("IAM enforced: each function, job and the state machine on its own Terraform role")


def _start_emulator() -> tuple[Any, str]:
    """moto's server on loopback, mended and with IAM enforced; its endpoint in the
    environment, for boto3 and the runner."""
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    from infra.emulator import CONFIG, mend_moto, run_here

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    default_user_config.update(CONFIG)
    mend_moto(setattr)
    run_here(setattr, lambda_call, glue_call, batch_call, mapped_call)
    enforce(setattr, IAM)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    say(f"moto server on {endpoint}")
    os.environ["MOTO_PORT"] = str(port)  # where moto's Step Functions sends its task calls
    # moto's Lambda logs each invocation it cannot run in Docker; `infra.emulator` runs them.
    logging.getLogger("moto.awslambda.models").setLevel(logging.CRITICAL)
    # moto's placeholder credentials: the emulator accepts any.
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106
        AWS_DEFAULT_REGION=REGION, POWERTOOLS_METRICS_DISABLED="true",
        POWERTOOLS_LOG_LEVEL="WARNING",
    )  # fmt: skip
    return server, endpoint


def _land_stream(out: dict[str, str]) -> None:
    """What `recs generate` put on the stream, put to Firehose, which lands it in the raw
    zone (moto's Firehose does not read a Kinesis source)."""
    import boto3

    records = stream_records(boto3.client("kinesis"), out["kinesis_stream"])
    firehose = boto3.client("firehose")
    for start in range(0, len(records), 500):
        firehose.put_record_batch(
            DeliveryStreamName=out["raw_events_firehose"],
            Records=[{"Data": r["Data"]} for r in records[start : start + 500]],
        )
    say(f"Firehose: {len(records):,} stream records put to {out['raw_events_firehose']}")


def _serve(out: dict[str, str]) -> None:
    """The API's Lambda answering from DynamoDB and taking an event into Kinesis; the
    consumer filling the history from the stream; then a realtime answer."""
    import boto3

    functions = [f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]]
    (api_function,) = [f for f in functions if f.endswith("-api")]
    (consumer_function,) = [f for f in functions if f.endswith("-consumer")]
    assert api(api_function, "GET", "/v1/health")["status"] == 200
    answer = api(api_function, "GET", "/v1/recommendations/personalized", "userId=U1&k=3")
    assert answer["status"] == 200, answer
    related = api(api_function, "GET", "/v1/recommendations/related", "itemId=I1&k=3")
    assert related["status"] == 200
    posted = json.dumps({"userId": "U1", "itemId": "I7", "event_type": "add_to_cart"})
    assert api(api_function, "POST", "/v1/events", body=posted)["status"] == 202

    # The stream's event source mapping took every record put to it, from `recs generate`
    # and from the API's POST alike; its poller delivers them now.
    deliver()
    say(
        f"Kinesis consumer, fed by the stream's event source mapping: "
        f"{INVOKED[consumer_function]:,} invocations wrote {WRITTEN[consumer_function]:,} "
        f"events into {out['history_table']}"
    )
    assert INVOKED[consumer_function], "the event source mapping never ran the consumer"
    assert not FAILED[consumer_function], FAILED
    realtime = api(api_function, "GET", "/v1/recommendations/personalized", "userId=U1&k=3")
    assert realtime["body"]["source"] == "realtime", realtime


def main() -> None:
    """Run it all; exit non-zero on the first thing that does not work."""
    server, endpoint = _start_emulator()
    with tempfile.TemporaryDirectory(prefix="recs-aws-local-") as folder:
        out = apply(endpoint, Path(folder))
        os.environ.update(
            {
                "RECS_LAKE": out["lake_uri"],
                "RECS_STORE": out["online_store"],
                "RECS_SINK": "kinesis",
                "RECS_KINESIS_STREAM": out["kinesis_stream"],
                "RECS_HISTORY": out["history"],
                "RECS_IDEMPOTENCY_STORE": out["idempotency_store"],
                "RECS_GLUE_DATABASE": out["glue_database"],
            }
        )
        os.chdir(folder)  # anything written to ./var would show here
        operate_with_iam(out)
        recs("generate", *SHOP)
        _land_stream(out)
        run_pipeline(out)
        _serve(out)
        assert not (Path(folder) / "var").exists(), "a local file was written on the AWS path"
        assert not IAM.denied, IAM.denied  # each denial already failed the step it was in
        checks = ", ".join(f"{service} {n:,}" for service, n in IAM.checked.most_common())
        say(f"IAM: requests checked against the signer's role: {checks}; 0 denied")
        logged = ", ".join(f"{name} {len(lines)}" for name, lines in sorted(LOGS.items()))
        say(f"Function log lines (CloudWatch Logs on AWS): {logged}")
        say("The AWS path works on the emulator.")
    server.stop()


if __name__ == "__main__":
    main()
