"""`make aws-local`: the AWS path on a local emulator, from Terraform to answers.

1. Starts moto's server on loopback.
2. Applies `infra/terraform` to it (a copy, with the provider's endpoints pointed there), and
   prints what it created.
3. Runs the AWS path with the AWS adapters, each setting taken from a Terraform output:
   - `recs generate`: history to the S3 lake, the last day through Kinesis;
   - Firehose: moto does not read a Kinesis source, so the stream's records are put to the
     delivery stream directly, and it lands them in the lake's raw zone;
   - `recs etl` (Glue partitions), `recs train`, `recs publish` (DynamoDB);
   - the API's Lambda handler (`serving.handler.handler`, in this process: moto runs Lambdas
     only in Docker) answers health, personalized and related from DynamoDB;
   - the Kinesis consumer's handler (`ingestion.history.handler`) fills the history table
     from the stream, and a personalized answer after a posted event is realtime.

What the emulator run leaves out, and why:
- the state machine and its schedule (`pipeline.tf` with `pipeline_function_arn` unset): the
  AWS provider calls ValidateStateMachineDefinition while planning one, which moto does not
  implement. The committed ASL is executed under moto by tests/integration/test_state_machine.py.
- the lake's TLS-only policy (`require_tls=false`): the emulator speaks plain HTTP.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[1]
PLUGINS: Final = Path(os.environ.get("TF_PLUGIN_DIR", "/opt/tf-plugins"))
REGION: Final = "us-east-1"
#: Every service the Terraform declares resources in.
SERVICES: Final = (
    "apigatewayv2", "athena", "cloudwatch", "dynamodb", "firehose", "glue", "iam", "kinesis",
    "kms", "lambda", "logs", "s3", "scheduler", "sfn", "sns", "sqs", "sts",
)  # fmt: skip
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
    (folder / "emulator_override.tf").write_text(_override(endpoint))
    _terraform(folder, "init", "-input=false", f"-plugin-dir={PLUGINS}")
    say("terraform apply (to the emulator)...")
    started = time.monotonic()
    _terraform(
        folder, "apply", "-auto-approve", "-input=false", "-no-color",
        "-var", f"region={REGION}", "-var", "require_tls=false",
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


def api(method: str, path: str, query: str = "", body: str | None = None) -> dict[str, Any]:
    """The API Lambda's handler, with an API Gateway HTTP API (2.0) event."""
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
    answer: dict[str, Any] = handler(event, LocalRequestContext())
    say(f"$ {method} {path}{'?' + query if query else ''} -> {answer['statusCode']}")
    say(f"  {answer['body'][:220]}")
    return {"status": answer["statusCode"], "body": json.loads(answer["body"])}


def main() -> None:
    """Run it all; exit non-zero on the first thing that does not work."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    say(f"moto server on {endpoint}")
    # moto runs Lambdas only in Docker: the event source mapping's invocations of the
    # consumer fail there and log it. The handlers run in this process instead (below).
    logging.getLogger("moto.awslambda.models").setLevel(logging.CRITICAL)
    # moto's placeholder credentials: the emulator accepts any.
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106
        AWS_DEFAULT_REGION=REGION, POWERTOOLS_METRICS_DISABLED="true",
        POWERTOOLS_LOG_LEVEL="WARNING",
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="recs-aws-local-") as folder:
        out = apply(endpoint, Path(folder))
        settings = {
            "RECS_LAKE": out["lake_uri"],
            "RECS_STORE": out["online_store"],
            "RECS_SINK": "kinesis",
            "RECS_KINESIS_STREAM": out["kinesis_stream"],
            "RECS_HISTORY": out["history"],
            "RECS_HISTORY_TABLE": out["history_table"],
            "RECS_IDEMPOTENCY_STORE": out["idempotency_store"],
            "RECS_GLUE_DATABASE": out["glue_database"],
        }
        os.environ.update(settings)
        os.chdir(folder)  # anything written to ./var would show here
        recs("generate", *SHOP)

        import boto3

        records = stream_records(boto3.client("kinesis"), out["kinesis_stream"])
        firehose = boto3.client("firehose")
        for start in range(0, len(records), 500):
            firehose.put_record_batch(
                DeliveryStreamName=out["raw_events_firehose"],
                Records=[{"Data": r["Data"]} for r in records[start : start + 500]],
            )
        say(f"Firehose: {len(records):,} stream records put to {out['raw_events_firehose']}")
        recs("etl")
        recs("train")
        recs("publish")

        assert api("GET", "/v1/health")["status"] == 200
        answer = api("GET", "/v1/recommendations/personalized", "userId=U1&k=3")
        assert answer["status"] == 200, answer
        assert api("GET", "/v1/recommendations/related", "itemId=I1&k=3")["status"] == 200
        posted = json.dumps({"userId": "U1", "itemId": "I7", "event_type": "add_to_cart"})
        assert api("POST", "/v1/events", body=posted)["status"] == 202

        from ingestion.history import handler as consumer

        fresh = stream_records(boto3.client("kinesis"), out["kinesis_stream"])
        event = {
            "Records": [
                {"kinesis": {"sequenceNumber": r["SequenceNumber"],
                             "data": base64.b64encode(r["Data"]).decode()}}
                for r in fresh
            ]
        }  # fmt: skip
        filled = consumer(event, None)
        say(f"Kinesis consumer: {filled['written']:,} events into {out['history_table']}")
        assert not filled["batchItemFailures"], filled
        realtime = api("GET", "/v1/recommendations/personalized", "userId=U1&k=3")
        assert realtime["body"]["source"] == "realtime", realtime
        assert not (Path(folder) / "var").exists(), "a local file was written on the AWS path"
        say("The AWS path works on the emulator.")
    server.stop()


if __name__ == "__main__":
    main()
