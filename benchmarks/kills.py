"""Nothing acknowledged is lost under `kill -9`: of the server while clients post, of the
flusher while it writes the raw zone, of the ETL while it curates, and of racing ETL runs.
Each scenario counts events acknowledged against events landed."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import duckdb

from benchmarks import END
from benchmarks.serving import free_port
from common.contract import event_id_for
from common.layout import RAW_EVENTS

RECS: Final = str(Path(sys.executable).with_name("recs"))
#: In-progress Idempotency-Keys of a killed server stay locked this long (the local
#: request timeout); a client retries them after it.
RETRY_DEADLINE_S: Final = 180.0


def server_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECS_")}
    env.update(
        RECS_LAKE=str(root / "lake"),
        RECS_EVENT_LOG=str(root / "event-log.sqlite3"),
        RECS_STORE=str(root / "store.sqlite3"),
        RECS_IDEMPOTENCY_STORE=str(root / "idempotency.sqlite3"),
        RECS_BUFFER_SECONDS="0.2",
    )
    return env


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        # One worker: a kill -9 of uvicorn's supervisor would leave its workers on the port.
        [
            RECS,
            "serve",
            "--workers",
            "1",
            "--port",
            str(port),
            "--no-metrics",
            "--log-level",
            "ERROR",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("recs serve did not start")


def post(port: int, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/events", data=body, method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def curated(lake: Path) -> tuple[int, set[str]]:
    files = str(lake / "curated" / "interactions" / "*" / "*.parquet")
    rows = duckdb.execute(f"SELECT event_id FROM read_parquet('{files}')").fetchall()
    return len(rows), {str(r[0]) for r in rows}


def run_recs(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RECS, *args], env=env, capture_output=True, text=True, check=False)


def server_kills(root: Path, events: int, kills: int, rng: random.Random) -> dict[str, int]:
    """Post events in batches of 10 while killing the server; retry what got no answer."""
    (root / "lake" / "raw").mkdir(parents=True)
    env, port = server_env(root), free_port()
    batches = deque(
        (
            f"batch-{b}",
            [
                {
                    "userId": f"U{rng.randrange(500)}",
                    "itemId": f"I{rng.randrange(200)}",
                    "event_type": rng.choice(["view", "add_to_cart", "purchase"]),
                }
                for i in range(10)
            ],
        )
        for b in range(events // 10)
    )
    acknowledged: set[str] = set()
    servers = [start_server(port, env)]
    done = threading.Event()

    # Kills land at random points of the stream (after a random number of posts, then a few
    # random milliseconds, mostly while a request is being handled), all `kills` of them
    # before the client is done: waiting on the clock, a fast client outran them.
    points = sorted(rng.sample(range(1, len(batches)), kills))
    posted = [0]

    def killer() -> None:
        for point in points:
            while posted[0] < point and not done.is_set():
                time.sleep(0.001)
            if done.is_set():
                return
            time.sleep(rng.uniform(0.0, 0.02))
            servers[-1].send_signal(signal.SIGKILL)
            servers[-1].wait()
            servers.append(start_server(port, env))

    thread = threading.Thread(target=killer)
    thread.start()
    server_errors = 0
    deadline = time.monotonic() + RETRY_DEADLINE_S
    while batches and time.monotonic() < deadline:
        key, batch = batches.popleft()
        posted[0] += 1
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        try:
            status = post(port, json.dumps(batch).encode(), headers)
        except OSError:
            status = 0
        if status == 202:
            # The API derives each event's id from the Idempotency-Key and its place.
            acknowledged |= {event_id_for(key, index) for index in range(len(batch))}
            continue
        server_errors += status >= 500
        batches.append((key, batch))  # a 409 (a killed request's key, still locked) or no answer
        if status in (0, 409):
            time.sleep(0.05)
    done.set()
    thread.join()
    killed = len(servers) - 1
    servers[-1].terminate()
    servers[-1].wait(timeout=30)
    run_recs("flush", env=env)
    run_recs("etl", env=env)
    rows, ids = curated(root / "lake")
    return {
        "acknowledged": len(acknowledged),
        "landed": len(acknowledged & ids),
        "duplicates": rows - len(ids),
        "kills": killed,
        "server_errors": server_errors,
        "unanswered": len(batches),
    }


def flusher_kills(root: Path, events: int, kills: int, rng: random.Random) -> dict[str, int]:
    """Fill the local event log, then kill `recs flush` mid-way again and again."""
    from common.contract import parse_event
    from common.lake import LocalLake
    from ingestion.raw import read_lines
    from ingestion.sinks import BufferHints, EventLog, LocalSink

    env = server_env(root)
    lake = LocalLake(root / "lake")
    sink = LocalSink(
        EventLog(Path(env["RECS_EVENT_LOG"])),
        lake,
        hints=BufferHints(size_bytes=1 << 40, interval_s=1e9),
    )
    now = datetime.now(UTC)
    for start in range(0, events, 5_000):
        sink.put(
            [
                parse_event(
                    {"userId": f"U{n % 997}", "itemId": f"I{n % 311}", "event_type": "view"},
                    now=now,
                )
                for n in range(start, min(events, start + 5_000))
            ]
        )
    sink.close()
    env["RECS_BUFFER_MB"] = "0.5"  # many objects per flush, so that kills land mid-way
    working = 0
    raw = root / "lake" / "raw" / "events"
    for _ in range(kills):
        before = sum(1 for _ in raw.rglob("*.gz")) if raw.exists() else 0
        flush = subprocess.Popen(
            [RECS, "flush"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Kill it once it has written something, at a random moment after.
        while flush.poll() is None and (
            not raw.exists() or sum(1 for _ in raw.rglob("*.gz")) == before
        ):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.1))
        working += flush.poll() is None
        flush.send_signal(signal.SIGKILL)
        flush.wait()
    run_recs("flush", env=env)
    ids = [
        json.loads(line)["event_id"]
        for key in lake.list(f"{RAW_EVENTS}/")
        for line in read_lines(lake.read_bytes(key))
    ]
    return {
        "logged": events,
        "landed": len(set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "working": working,
    }


def generated_lake(root: Path, events: int) -> Path:
    from common.lake import LocalLake
    from ingestion.generator import ShopSpec, generate_shop, write_catalog, write_raw

    lake = LocalLake(root / "source")
    shop = generate_shop(
        ShopSpec(users=20_000, items=5_000, categories=20, days=30, events=events, seed=3, end=END)
    )
    write_raw(shop, lake)
    write_catalog(shop, lake)
    return root / "source"


def etl_kills(root: Path, source: Path, kills: int, rng: random.Random) -> dict[str, int]:
    """`recs etl` killed at random moments, then run to the end; against a clean run."""
    clean, killed = root / "clean", root / "killed"
    shutil.copytree(source, clean)
    shutil.copytree(source, killed)
    run_recs("etl", "--lake", str(clean), "--etl-batch-mb", "8", env=server_env(root))
    expected_rows, expected_ids = curated(clean)
    started = time.monotonic()
    run_recs(
        "etl", "--lake", str(root / "timing"), env=server_env(root)
    )  # startup cost, for the kills
    working = 0
    for _ in range(kills):
        run = subprocess.Popen(
            [RECS, "etl", "--lake", str(killed), "--etl-batch-mb", "8"],
            env=server_env(root),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 1.0) * max(1.0, time.monotonic() - started))
        working += run.poll() is None
        run.send_signal(signal.SIGKILL)
        run.wait()
    run_recs("etl", "--lake", str(killed), env=server_env(root))
    rows, ids = curated(killed)
    return {
        "expected": expected_rows,
        "rows": rows,
        "same_ids": int(ids == expected_ids),
        "duplicates": rows - len(ids),
        "working": working,
    }


def concurrent_etl(root: Path, source: Path, rounds: int, runs: int) -> dict[str, int]:
    """`runs` ETL processes started together on a fresh lake, `rounds` times."""
    clean = root / "concurrent-clean"
    shutil.copytree(source, clean)
    run_recs("etl", "--lake", str(clean), env=server_env(root))
    expected_rows, expected_ids = curated(clean)
    refused = matching = 0
    for n in range(rounds):
        lake = root / f"concurrent-{n}"
        shutil.copytree(source, lake)
        processes = [
            subprocess.Popen(
                [RECS, "etl", "--lake", str(lake)],
                env=server_env(root),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(runs)
        ]
        for process in processes:
            _, stderr = process.communicate(timeout=600)
            refused += process.returncode == 2 and "lock is held" in stderr
        run_recs(
            "etl", "--lake", str(lake), env=server_env(root)
        )  # what every refused run left undone
        rows, ids = curated(lake)
        matching += rows == expected_rows and ids == expected_ids
    return {"rounds": rounds, "matching": matching, "refused": refused, "runs": rounds * runs}
