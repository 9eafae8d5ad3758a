"""Kill the local writer with SIGKILL mid-stream, again and again: nothing acknowledged is lost,
and nothing reaches the raw zone twice."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from common.lake import LocalLake
from ingestion.raw import read_lines
from ingestion.sinks import EventLog, LocalSink

ROOT = Path(__file__).parents[2]


def _run_and_kill(log: Path, lake: Path, prefix: str, after_s: float) -> list[str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.ingestion.crash_writer", str(log), str(lake), prefix],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    first = child.stdout.readline()  # wait until it is really writing
    time.sleep(after_s)
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate()
    assert child.returncode == -signal.SIGKILL
    return [line for line in (first + rest).splitlines() if line]


def test_every_acknowledged_event_lands_exactly_once_across_kills(tmp_path: Path) -> None:
    log, lake_dir = tmp_path / "log.sqlite3", tmp_path / "lake"
    rng = random.Random(20251124)
    acknowledged: list[str] = []
    for round_ in range(4):
        acknowledged += _run_and_kill(log, lake_dir, f"r{round_}", rng.uniform(0.3, 0.9))
    assert len(acknowledged) > 100, "the writer should have made progress"

    lake = LocalLake(lake_dir)
    sink = LocalSink(EventLog(log), lake)  # restart: recovers interrupted flushes
    sink.flush(force=True)
    sink.close()
    landed = [
        json.loads(line)["event_id"]
        for key in lake.list("raw/events/")
        for line in read_lines(lake.read_bytes(key))
    ]
    assert len(landed) == len(set(landed)), "an event reached the raw zone twice"
    missing = set(acknowledged) - set(landed)
    assert not missing, f"{len(missing)} acknowledged events were lost"
    # A write killed half-way may leave its temporary file; readers never see it.
    assert all(not key.endswith(".tmp") for key in lake.list(""))
