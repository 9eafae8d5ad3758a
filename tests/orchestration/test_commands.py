"""`recs pipeline` and `recs models` as a user runs them: real processes on a generated shop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.etl_helpers import staples_csv

RECS = str(Path(sys.executable).with_name("recs"))
NIGHT = "2026-11-02T02:00:00Z"


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECS_")}
    env.update(
        RECS_LAKE=str(root / "lake"),
        RECS_EVENT_LOG=str(root / "var" / "event-log.sqlite3"),
        RECS_STORE=str(root / "var" / "store.sqlite3"),
        POWERTOOLS_METRICS_DISABLED="true",
    )
    return env


def recs(
    root: Path, *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [RECS, *args],
        env=_env(root),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _shop(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    recs(
        root,
        *("generate", "--users", "600", "--items", "300", "--events", "20000", "--seed", "5"),
        *("--days", "60", "--end", "2026-11-02", "--live-days", "1"),
    )
    # Events the API took after the last flush wait in the local event log.
    waiting = [
        {"userId": f"U{n}", "itemId": f"I{n}", "event_type": "view", "ts": "2026-11-01T23:00:00Z"}
        for n in range(1, 4)
    ]
    recs(root, "ingest", "-", "--no-flush", stdin="\n".join(json.dumps(e) for e in waiting))
    return root


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated shop, never run: each test copies it."""
    return _shop(tmp_path_factory.mktemp("pipeline") / "shop")


def _copy(shop: Path, to: Path) -> Path:
    shutil.copytree(shop, to)
    return to


@pytest.fixture(scope="module")
def trained_twice(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shop after one night (20261102T020000Z in production) and a second training on
    the same data (20261103T020000Z, not published): each test copies it."""
    root = _copy(shop, tmp_path_factory.mktemp("twice") / "shop")
    recs(root, "pipeline", "run", "--now", NIGHT)
    recs(root, "train", "--now", "2026-11-03T02:00:00Z", "--force")  # the same data
    return root


def _record(root: Path) -> dict:
    runs = sorted((root / "lake" / "_state" / "runs").glob("*.json"))
    return json.loads(runs[-1].read_text())


def test_a_night_runs_every_step_publishes_and_records_it(shop: Path, tmp_path: Path) -> None:
    root = _copy(shop, tmp_path / "night")
    done = recs(root, "pipeline", "run", "--now", NIGHT)
    for n, step in enumerate(("flush", "etl", "train", "evaluate", "gate", "publish", "notify")):
        assert f"[{n + 1}/7] {step}:" in done.stderr
    record = _record(root)
    assert record["status"] == "succeeded"
    assert [s["status"] for s in record["steps"]] == ["succeeded"] * 7
    assert record["steps"][0]["result"]["events"] == 3  # what waited in the local event log
    version = record["steps"][2]["result"]["version"]
    assert version == "20261102T020000Z"
    assert "published 20261102T020000Z" in done.stdout
    listed = recs(root, "models", "list").stdout
    assert f"{version}    production" in listed
    status = recs(root, "pipeline", "status").stdout
    assert record["run_id"] in status
    assert "publish   succeeded" in status


def test_a_second_night_retrains_and_says_why_it_promotes_or_keeps(
    shop: Path, tmp_path: Path
) -> None:
    root = _copy(shop, tmp_path / "two-nights")
    recs(root, "pipeline", "run", "--now", NIGHT)
    more = recs(
        root,
        *("generate", "--users", "600", "--items", "300", "--events", "4000", "--seed", "6"),
        *("--days", "3", "--end", "2026-11-05", "--live-days", "1"),
    )
    assert more.returncode == 0
    done = recs(root, "pipeline", "run", "--now", "2026-11-05T02:00:00Z")
    record = _record(root)
    gate = record["steps"][4]["result"]
    assert gate["outcome"] in ("approved", "kept")
    assert any("production 20261102T020000Z" in r for r in gate["reasons"])  # compared
    if gate["outcome"] == "approved":
        assert "published 20261105T020000Z" in done.stdout
    else:
        assert record["steps"][5]["status"] == "skipped"
        assert "kept it as a candidate" in done.stdout


def test_a_kept_candidate_is_a_normal_night_not_a_failure(tmp_path: Path) -> None:
    root = tmp_path / "staples"
    root.mkdir()
    recs(root, "import", str(staples_csv(root / "events.csv.gz")))
    done = recs(root, "pipeline", "run", "--now", NIGHT)
    record = _record(root)
    assert record["status"] == "succeeded"
    assert record["steps"][4]["result"]["outcome"] == "kept"
    assert record["steps"][5]["status"] == "skipped"
    assert "kept it as a candidate" in done.stdout
    assert "Production is unchanged" in done.stdout
    # `make train` publishes the same way: a kept candidate is reported, not an error.
    publish = recs(root, "publish", "--if-approved")
    assert "kept as a candidate" in publish.stdout


def test_kill_9_mid_run_then_resume_ends_as_a_clean_run(shop: Path, tmp_path: Path) -> None:
    clean = _copy(shop, tmp_path / "clean")
    recs(clean, "pipeline", "run", "--now", NIGHT)

    killed = _copy(shop, tmp_path / "killed")
    runs = killed / "lake" / "_state" / "runs"
    process = subprocess.Popen(
        [RECS, "pipeline", "run", "--now", NIGHT],
        env=_env(killed),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            found = sorted(runs.glob("*.json")) if runs.exists() else []
            if found:
                steps = {s["name"]: s["status"] for s in json.loads(found[-1].read_text())["steps"]}
                if steps["train"] == "running":
                    break
            time.sleep(0.02)
        else:
            pytest.fail("the run never reached its train step")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert _record(killed)["status"] == "running"  # what a kill leaves: a run under way
    # Before: `recs pipeline status` showed it as running, for ever.
    shown = recs(killed, "pipeline", "status", "--limit", "1").stdout
    assert f"{_record(killed)['run_id']}  killed  " in shown
    assert "`recs pipeline run --resume` goes on" in shown

    resumed = recs(killed, "pipeline", "run", "--resume")
    assert "[1/7] flush: done in an earlier attempt" in resumed.stderr
    record, reference = _record(killed), _record(clean)
    assert record["status"] == "succeeded"
    assert record["resumed"] == 1
    assert record["now"] == reference["now"]
    version = record["steps"][2]["result"]["version"]
    assert version == reference["steps"][2]["result"]["version"]
    for name in ("users", "items"):
        ours = (killed / "lake" / "batch" / version / f"{name}.jsonl").read_bytes()
        theirs = (clean / "lake" / "batch" / version / f"{name}.jsonl").read_bytes()
        assert ours == theirs
    assert recs(killed, "models", "list").stdout == recs(clean, "models", "list").stdout
    again = recs(killed, "pipeline", "run", "--resume", check=False)
    assert again.returncode == 2
    assert "nothing to resume" in again.stderr


def test_promote_and_rollback_flip_the_production_pointer(
    trained_twice: Path, tmp_path: Path
) -> None:
    root = _copy(trained_twice, tmp_path / "models")
    recs(root, "models", "promote", "20261103T020000Z", "--force")
    assert "20261103T020000Z    production" in recs(root, "models", "list").stdout
    rolled = recs(root, "models", "rollback")
    assert "20261102T020000Z is in production" in rolled.stdout
    listed = recs(root, "models", "list").stdout
    assert "20261102T020000Z    production" in listed
    assert "20261103T020000Z    production" not in listed
    shown = recs(root, "models", "show", "20261102T020000Z").stdout
    assert shown.startswith("20261102T020000Z: production")
    missing = recs(root, "models", "show", "19990101T000000Z", check=False)
    assert missing.returncode == 2
    assert "recs models list" in missing.stderr


def test_an_experiment_starts_reports_holds_publishes_and_promotes_only_a_winner(
    trained_twice: Path, tmp_path: Path
) -> None:
    root = _copy(trained_twice, tmp_path / "experiment")
    started = recs(root, "models", "experiment", "start", "20261103T020000Z", "--share", "0.25")
    assert "25% of shoppers get 20261103T020000Z, the rest 20261102T020000Z" in started.stdout
    again = recs(root, "models", "experiment", "start", "20261103T020000Z", check=False)
    assert again.returncode != 0
    assert "is running; stop it first" in again.stderr

    held = recs(root, "models", "promote", "20261102T020000Z", check=False)
    assert held.returncode != 0
    assert "Stop it first: `recs models experiment stop`" in held.stderr

    status = recs(root, "models", "experiment", "status").stdout
    assert "running" in status
    assert "no shopper of either arm" in status  # the shop's events are all older
    body = json.loads(recs(root, "models", "experiment", "status", "--json").stdout)
    assert body["experiment"]["candidate"] == "20261103T020000Z"
    assert body["verdict"] == "no-shoppers"

    refused = recs(root, "models", "experiment", "stop", "--promote", check=False)
    assert refused.returncode != 0
    assert "not promoted, as the candidate has not clearly won" in refused.stderr
    forced = recs(root, "models", "experiment", "stop", "--promote", "--force")
    assert "20261103T020000Z is in production" in forced.stdout
    assert "20261103T020000Z    production" in recs(root, "models", "list").stdout
    after = recs(root, "models", "experiment", "status").stdout
    assert "stopped" in after
    assert "(promoted)" in after
    record = next((root / "lake" / "_state" / "experiments").glob("*.json"))
    assert json.loads(record.read_text())["outcome"]["verdict"] == "no-shoppers"
