"""`make aws-local` from end to end: the Terraform applied to a moto server, then the AWS path
on it, from `recs generate` through Kinesis, Firehose, the nightly state machine (the ETL as
the Glue job, training and publishing) to the API's Lambda handler and the Kinesis consumer,
each on its own Terraform role with IAM enforced.
About two minutes, so it runs in `make test-all` (marked slow), not in `make test`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = Path(os.environ.get("TF_PLUGIN_DIR", "/opt/tf-plugins"))

pytestmark = [pytest.mark.slow, pytest.mark.aws]


def test_make_aws_local_runs_the_aws_path_on_the_emulator() -> None:
    if shutil.which("terraform") is None or not (PLUGINS / "registry.terraform.io").is_dir():
        pytest.skip("needs terraform and the AWS provider mirror (TF_PLUGIN_DIR)")
    if not (ROOT / "dist" / "recs-api-arm64.zip").exists():
        subprocess.run([sys.executable, "-m", "serving.package"], cwd=ROOT, check=True)
    done = subprocess.run(
        [sys.executable, "-m", "infra.aws_local"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert 'aws_lambda_function.recs["api"]' in out
    assert "aws_sfn_state_machine.pipeline[0]" in out
    assert "aws_glue_job.etl[0]" in out
    # The nightly state machine ran every step, the etl step as the Glue job.
    assert "SUCCEEDED: start -> flush -> etl-runs-on -> etl-on-glue" in out
    assert "-> publish -> notify" in out
    assert "it is in production now" in out  # its summary, read back from SNS
    assert "interactions (20 partitions)" in out  # Athena sees the curated dates
    # Every component on its own role, with IAM enforced; nothing denied.
    assert "IAM enforced: each function, job and the state machine on its own" in out
    assert re.search(r"IAM: requests checked .*dynamodb \d+.*; 0 denied", out)
    # The consumer ran from the stream's event source mapping, not from this script.
    assert re.search(r"event source mapping: \d+ invocations wrote 613 events", out)
    assert '"source":"realtime"' in out
    assert out.rstrip().endswith("The AWS path works on the emulator.")
