"""Two ETL runs at once: the second fails at once and changes nothing, wherever the first is.

Before the lock, one run deleted the other's staging as "uncommitted", and runs of the same
second shared a run id: curated rows went missing while the bookmark claimed them all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from common.errors import LakeLocked
from common.lake import LocalLake, S3Lake
from common.layout import LOCKS
from etl.job import run_etl
from tests.etl_helpers import NOW, content, plant_shop

EVENTS = 1500
BATCH = 32 << 10


@dataclass
class PausingLake:
    """A lake that stops at its n-th change until told to go on."""

    inner: LocalLake
    pause_at: int
    changes: int = 0
    paused: threading.Event = field(default_factory=threading.Event)
    resume: threading.Event = field(default_factory=threading.Event)

    def _change(self) -> None:
        self.changes += 1
        if self.changes == self.pause_at:
            self.paused.set()
            self.resume.wait(timeout=60)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def write_bytes(self, key: str, body: bytes) -> None:
        self._change()
        self.inner.write_bytes(key, body)

    def move(self, source: str, target: str) -> None:
        self._change()
        self.inner.move(source, target)

    def delete(self, key: str) -> None:
        self._change()
        self.inner.delete(key)

    def upload(self, key: str, path: Path) -> None:
        self._change()
        self.inner.upload(key, path)


def _fresh(tmp_path: Path, name: str) -> LocalLake:
    lake = LocalLake(tmp_path / name)
    plant_shop(lake, events=EVENTS, days=3)
    return lake


def test_a_second_run_at_any_point_of_the_first_is_refused_and_harms_nothing(
    tmp_path: Path,
) -> None:
    clean = _fresh(tmp_path, "clean")
    counting = PausingLake(clean, pause_at=0)
    run_etl(counting, now=NOW, batch_bytes=BATCH)  # type: ignore[arg-type]
    expected = content(clean)
    assert counting.changes >= 20

    for pause_at in range(1, counting.changes + 1):
        lake = _fresh(tmp_path, f"paused-{pause_at}")
        first = PausingLake(lake, pause_at=pause_at)
        errors: list[BaseException] = []

        def work(target: PausingLake = first, failures: list[BaseException] = errors) -> None:
            try:
                run_etl(target, now=NOW, batch_bytes=BATCH)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                failures.append(exc)

        thread = threading.Thread(target=work)
        thread.start()
        assert first.paused.wait(timeout=60), f"the first run never reached change {pause_at}"
        second = PausingLake(lake, pause_at=0)
        with pytest.raises(LakeLocked, match="the lake's etl lock is held by"):
            run_etl(second, now=NOW + timedelta(seconds=1), batch_bytes=BATCH)  # type: ignore[arg-type]
        assert second.changes == 0  # the refused run changed nothing
        first.resume.set()
        thread.join(timeout=120)
        assert not errors, errors
        assert content(lake) == expected, f"paused at change {pause_at}"
        assert run_etl(lake, now=NOW).nothing_new


def test_two_processes_started_together_curate_every_event_once(tmp_path: Path) -> None:
    expected = None
    for attempt in range(3):
        lake = _fresh(tmp_path, f"race-{attempt}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECS_")}
        command = [str(Path(sys.executable).with_name("recs")), "etl", "--lake", lake.uri]
        runs = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        results = [(run.wait(timeout=120), run.stderr.read().decode()) for run in runs]  # type: ignore[union-attr]
        for code, stderr in results:
            assert code == 0 or (code == 2 and "the lake's etl lock is held by" in stderr), stderr
            assert "Traceback" not in stderr
        run_etl(lake, now=datetime.now(UTC))  # whatever the refused run left undone
        rows = content(lake)["interactions"]
        assert len(rows) == EVENTS + 1
        if expected is None:
            expected = [r["event_id"] for r in rows]
        assert [r["event_id"] for r in rows] == expected


def test_run_ids_are_unique_within_a_second(tmp_path: Path) -> None:
    lake = _fresh(tmp_path, "ids")
    first = run_etl(lake, now=NOW)
    assert first.run_id is not None
    assert re.fullmatch(r"20261102T000000Z-000001-[0-9a-f]{6}", first.run_id)


def test_a_lock_left_by_a_killed_process_does_not_block_the_next_run(tmp_path: Path) -> None:
    lake = _fresh(tmp_path, "killed")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from common.lake import LocalLake; "
            "lock = LocalLake(__import__('pathlib').Path(sys.argv[1])).lock('etl', lease_s=1); "
            "lock.__enter__(); print('held', flush=True); time.sleep(60)",
            lake.uri,
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == b"held\n"
    with pytest.raises(LakeLocked, match=rf"held by .*:{holder.pid} since"):
        run_etl(lake, now=NOW)
    holder.kill()
    holder.wait()
    assert run_etl(lake, now=NOW).curated == EVENTS + 1


def test_temporary_files_of_killed_writes_are_removed_by_the_next_run(tmp_path: Path) -> None:
    lake = _fresh(tmp_path, "tmp")
    folder = Path(lake.uri) / "raw" / "events"
    stale = folder / ".part-1.gz.abc123.tmp"
    fresh = folder / ".part-2.gz.def456.tmp"
    for path in (stale, fresh):
        path.write_bytes(b"half a write")
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    report = run_etl(lake, now=NOW)
    assert report.abandoned_files == 1
    assert not stale.exists()
    assert fresh.exists()  # a write that may still be running is left alone


@pytest.mark.aws
def test_the_s3_lock_is_a_conditional_put_with_a_lease(aws_env: None) -> None:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="shop-lake")
        lake = S3Lake("shop-lake", "prod", client=s3)
        key = f"prod/{LOCKS}/etl.lock"
        with lake.lock("etl", lease_s=3600):
            assert s3.get_object(Bucket="shop-lake", Key=key)["Body"].read()
            with (
                pytest.raises(LakeLocked, match=r"held by .* since .*s3://shop-lake/prod/"),
                lake.lock("etl", lease_s=3600),
            ):
                pass
        assert "Contents" not in s3.list_objects_v2(Bucket="shop-lake", Prefix=key)
        # A holder that died leaves its object; once its lease is over, the next run takes it.
        expired = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        s3.put_object(
            Bucket="shop-lake",
            Key=key,
            Body=f'{{"owner": "gone:1", "since": "x", "expires": "{expired}"}}'.encode(),
        )
        with lake.lock("etl", lease_s=3600):
            pass
        alive = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        s3.put_object(
            Bucket="shop-lake",
            Key=key,
            Body=f'{{"owner": "busy:2", "since": "x", "expires": "{alive}"}}'.encode(),
        )
        with pytest.raises(LakeLocked, match="held by busy:2"), lake.lock("etl", lease_s=60):
            pass
