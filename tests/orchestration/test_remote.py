"""`python -m orchestration.remote`: one step of a run, as the Glue job and the Batch job run it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.lake import LocalLake
from ingestion.generator import ShopSpec, generate_shop, write_catalog, write_raw
from orchestration import remote
from orchestration.runner import start_run
from orchestration.runs import RunRecord
from orchestration.settings import PipelineSettings

NOW = datetime(2026, 11, 2, 2, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[LocalLake, str]:
    lake = LocalLake(tmp_path / "lake")
    shop = generate_shop(
        ShopSpec(users=200, items=80, categories=4, days=20, events=4000, seed=3, end=NOW)
    )
    write_raw(shop, lake)
    write_catalog(shop, lake)
    for name in ("RECS_LAKE", "RECS_STORE", "RECS_EVENT_LOG", "RECS_ETL_ON"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECS_STORE", str(tmp_path / "store.sqlite3"))
    monkeypatch.setenv("RECS_EVENT_LOG", str(tmp_path / "log.sqlite3"))
    settings = PipelineSettings.from_env({"RECS_LAKE": str(lake.root)})
    return lake, start_run(lake, settings, NOW).run_id


def test_glue_style_arguments_become_settings_and_the_step_runs(
    run: tuple[LocalLake, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lake, run_id = run
    monkeypatch.setenv("RECS_LAKE", "/nowhere")  # the job's argument wins, as on Glue
    argv = [
        "--JOB_NAME", "recs-prod-etl", "--RECS_LAKE", str(lake.root), "--run-id", run_id,
        "--step", "etl", "--job-bookmark-option", "job-bookmark-disable",
    ]  # fmt: skip
    assert remote.main(argv) == 0
    assert os.environ["RECS_LAKE"] == str(lake.root)
    etl = RunRecord.load(lake, run_id).step("etl")
    assert etl.status == "succeeded"
    assert etl.result["curated"] == 4000
    assert "etl: succeeded" in capsys.readouterr().out


def test_a_retryable_error_is_tried_again_then_fails_with_exit_1(
    run: tuple[LocalLake, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lake, run_id = run
    monkeypatch.setenv("RECS_LAKE", str(lake.root))
    slept: list[float] = []
    with lake.lock("etl", lease_s=60):  # another ETL holds the lake throughout
        code = remote.main(["--run-id", run_id, "--step", "etl"], sleep=slept.append)
    assert code == 1
    assert slept == [5.0, 10.0]  # the local runner's backoff
    etl = RunRecord.load(lake, run_id).step("etl")
    assert (etl.status, etl.attempts) == ("failed", 3)
    assert "etl failed: LakeLocked" in capsys.readouterr().err


def test_a_local_file_beside_an_s3_lake_is_refused_before_anything_runs(
    run: tuple[LocalLake, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _lake, run_id = run
    argv = ["--RECS_LAKE=s3://shop-lake/prod", "--run-id", run_id, "--step", "train"]
    assert remote.main(argv) == 1
    err = capsys.readouterr().err
    assert "The train job" in err
    assert "RECS_STORE is the file" in err


def test_wrong_arguments_exit_2_saying_what_is_wanted() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.remote", "--run-id", "x", "--step", "publish"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "invalid choice: 'publish'" in done.stderr


@pytest.mark.aws
def test_the_etl_step_on_an_s3_lake_registers_the_new_dates_in_glue(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nightly etl step, wherever it runs, leaves Athena seeing what it curated."""
    import boto3
    from moto import mock_aws

    from common.lake import open_lake

    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="shop-lake")
        lake = open_lake("s3://shop-lake/prod")
        shop = generate_shop(
            ShopSpec(users=100, items=40, categories=3, days=5, events=1000, seed=5, end=NOW)
        )
        write_raw(shop, lake)
        write_catalog(shop, lake)
        aws = {
            "RECS_LAKE": "s3://shop-lake/prod", "RECS_STORE": "dynamodb://store",
            "RECS_SINK": "kinesis", "RECS_KINESIS_STREAM": "events",
            "RECS_HISTORY": "dynamodb://history", "RECS_IDEMPOTENCY_STORE": "dynamodb://keys",
            "RECS_GLUE_DATABASE": "shop_curated",
        }  # fmt: skip
        for name, value in aws.items():
            monkeypatch.setenv(name, value)
        run_id = start_run(lake, PipelineSettings.from_env(), NOW).run_id
        assert remote.main(["--run-id", run_id, "--step", "etl"]) == 0
        glue = boto3.client("glue")
        tables = {t["Name"] for t in glue.get_tables(DatabaseName="shop_curated")["TableList"]}
        assert "interactions" in tables
        found = glue.get_partitions(DatabaseName="shop_curated", TableName="interactions")
        curated = {
            key.split("event_date=")[1].split("/")[0] for key in lake.list("curated/interactions/")
        }
        assert {p["Values"][0] for p in found["Partitions"]} == curated  # one per date
