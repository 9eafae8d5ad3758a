"""Reliability: what lands when processes are killed, when ETL runs race, and under hostile input.

Each row sets what we kept beside what we were given in the same run: events acknowledged by
the API against events in the curated zone after `kill -9` of the server, events in the log
against events in the raw zone after `kill -9` of the flusher, and a clean ETL run's rows
against the rows after `kill -9` of the ETL or after concurrent runs. Hostile inputs set the
number of 5xx answers against the number of inputs tried: the ratio must be 0.

Everything runs as a user runs it: `recs serve`, `recs flush` and `recs etl` in their own
processes, killed with SIGKILL at random moments from a seeded generator.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from benchmarks import END
from benchmarks.foundation import Row
from benchmarks.kills import (
    RECS,
    concurrent_etl,
    curated,
    etl_kills,
    flusher_kills,
    generated_lake,
    post,
    run_recs,
    server_env,
    server_kills,
    start_server,
)
from benchmarks.serving import free_port

_POISON: Final[list[bytes]] = [
    b'{"userId":"U1","itemId":"I1","event_type":"view","quantity":' + b"9" * 5000 + b"}",
    b'{"userId":' + b"[" * 6000 + b"]" * 6000 + b"}",
    b"[" * 100_000,
    b'{"userId":"U1","itemId":"I1","event_type":"view","properties":{"k":"\\ud800"}}',
    b'{"userId":"\\udfff","itemId":"I1","event_type":"view"}',
    b'{"userId":"U1","itemId":"I1","event_type":"view","price":NaN}',
    b'{"userId":"U1","itemId":"I1","event_type":"view","price":1e999}',
    b'{"userId":"U\xff","itemId":"I1","event_type":"view"}',
    b"\x00\x01\x02",
    b"null",
    b"",
]
_VALUES: Final[list[Any]] = [
    None, True, -1, 0, 2**70, 1e308, "", " ", "\x00", "\u200b", "x" * 5000, [], {}, [[[]]],
    {"a": {"b": {"c": 1}}}, "2025-08-16T18:30:00Z", "1999-01-01T00:00:00Z", "view",
]  # fmt: skip
_FIELDS: Final = ["userId", "itemId", "event_type", "ts", "eventId", "price", "quantity"]


def _hostile_bodies(count: int, rng: random.Random) -> Iterator[tuple[bytes, dict[str, str]]]:
    yield from ((body, {"Content-Type": "application/json"}) for body in _POISON)
    good = {"userId": "U1", "itemId": "I1", "event_type": "view"}
    for _ in range(count):
        record: Any = dict(good)
        for _ in range(rng.randrange(1, 4)):
            record[rng.choice(_FIELDS)] = rng.choice(_VALUES)
        body = json.dumps(rng.choice([record, [record] * rng.randrange(0, 3), record["userId"]]))
        raw = body.encode()
        if rng.random() < 0.2:
            raw = raw[: rng.randrange(len(raw) + 1)]
        headers = {"Content-Type": rng.choice(["application/json", "text/plain", ""])}
        if rng.random() < 0.1:
            headers["Content-Encoding"] = "gzip"
        yield raw, headers


_RAW_REQUESTS: Final[list[bytes]] = [
    b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    b"GET /v1/recommendations/related?itemId=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02 not http\r\n\r\n",
    b"GET /v1/recommendations/personalized?userId=%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"DELETE /v1/events HTTP/1.1\r\nHost: x\r\n\r\n",
]


def _raw_status(port: int, data: bytes, source: str = "127.0.0.1") -> int:
    with socket.create_connection(
        ("127.0.0.1", port), timeout=10, source_address=(source, 0)
    ) as conn:
        conn.sendall(data)
        received = b""
        try:
            while (chunk := conn.recv(65536)) and b"\r\n" not in received:
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    parts = received.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _published(root: Path) -> None:
    """A small shop, curated, trained and published: the API answers 200, not "no model"."""
    from common.lake import LocalLake
    from etl.job import run_etl
    from ingestion.generator import ShopSpec, generate_shop, write_catalog, write_raw
    from serving.publish import publish
    from serving.store import SQLiteStore
    from training.pipeline import train

    lake = LocalLake(root / "lake")
    shop = generate_shop(
        ShopSpec(users=2_000, items=500, categories=10, days=20, events=30_000, seed=5, end=END)
    )
    write_raw(shop, lake)
    write_catalog(shop, lake)
    run_etl(lake, now=END)
    version = train(lake, now=END).version
    publish(lake, SQLiteStore(root / "store.sqlite3"), version, force=True)


def hostile_inputs(root: Path, count: int, rng: random.Random) -> dict[str, int]:
    """Hostile bodies and raw requests at a live server; count the answers by class."""
    _published(root)
    env, port = server_env(root), free_port()
    server = start_server(port, env)
    tried = server_errors = no_answer = 0
    try:
        for body, headers in _hostile_bodies(count, rng):
            tried += 1
            try:
                status = post(port, body, headers)
            except OSError:
                no_answer += 1
                continue
            server_errors += status >= 500
        for data in _RAW_REQUESTS:
            tried += 1
            status = _raw_status(port, data)
            no_answer += status == 0
            server_errors += status >= 500
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"tried": tried, "server_errors": server_errors, "no_answer": no_answer}


def big_batch(root: Path) -> dict[str, int]:
    """A valid 100-event batch of about 30 KB, its head and body in one write (as curl and
    urllib send them): before, the body was counted as head, and it got a 431."""
    (root / "lake" / "raw").mkdir(parents=True)
    env, port = server_env(root), free_port()
    batch = [
        {"userId": f"U{n}", "itemId": f"I{n}", "event_type": "view",
         "properties": {"note": "x" * 250}}
        for n in range(100)
    ]  # fmt: skip
    body = json.dumps(batch).encode()
    server = start_server(port, env)
    try:
        status = post(port, body, {"Content-Type": "application/json"})
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"sent": len(batch), "accepted": len(batch) if status == 202 else 0,
            "bytes": len(body), "status": status}  # fmt: skip


def _get_json(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"{}")


def unloadable_version(root: Path, seconds: float = 6.0) -> dict[str, int]:
    """Requests from 4 clients while a version with a file missing is published: `recs publish
    --force` must refuse it, and a store that names it anyway must leave the version loaded
    answering."""
    from common.lake import LocalLake
    from serving.store import SQLiteStore
    from training.pipeline import TrainOptions, train

    _published(root)
    lake = LocalLake(root / "lake")
    store = SQLiteStore(root / "store.sqlite3")
    live = store.active_version()
    broken = train(lake, TrainOptions(seed=9), now=END + timedelta(minutes=1)).version
    if broken == live:
        raise RuntimeError("the second version must be a new one")
    (root / "lake" / "models" / broken / "similar-items.npz").unlink()
    env, port = server_env(root) | {"RECS_MODEL_CHECK_SECONDS": "0.2"}, free_port()
    server = start_server(port, env)
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def client(n: int) -> None:
        paths = ["/v1/recommendations/personalized?userId=U{}&k=5", "/v1/recommendations/"
                 "related?itemId=I{}&k=5", "/v1/health"]  # fmt: skip
        count = 0
        while not stop.is_set():
            path = paths[count % 3].format(1 + (n * 31 + count) % 500)
            try:
                status, body = _get_json(port, path)
            except OSError:
                status, body = 0, {}
            statuses.append(status)
            if body.get("modelVersion"):
                versions.add(str(body["modelVersion"]))
            count += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    failure_seen = 0
    try:
        for thread in threads:
            thread.start()
        time.sleep(seconds / 3)
        refused = run_recs("publish", "--force", broken, env=env).returncode != 0
        store.activate(broken)  # a store that names it anyway (as --force did before)
        time.sleep(seconds / 3)
        failure_seen = int(_get_json(port, "/v1/health")[1].get("failure") is not None)
        time.sleep(seconds / 3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        server.terminate()
        server.wait(timeout=30)
    return {
        "answers": len(statuses),
        "server_errors": sum(1 for s in statuses if s >= 500),
        "no_answer": statuses.count(0),
        "other_versions": len(versions - {live}),
        "publish_refused": int(refused),
        "failure_in_health": failure_seen,
    }


def late_resume(root: Path, late: int = 500) -> dict[str, int]:
    """A night that fails at its etl step, events acknowledged an hour later, then `recs
    pipeline run --resume`: before, the resumed ETL used the run's clock and quarantined
    them as "in the future"."""
    from common.lake import LocalLake
    from ingestion.generator import ShopSpec, generate_shop, write_catalog, write_raw

    lake = LocalLake(root / "lake")
    shop = generate_shop(
        ShopSpec(users=2_000, items=500, categories=10, days=20, events=20_000, seed=8,
                 end=datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
    )  # fmt: skip
    write_raw(shop, lake)
    write_catalog(shop, lake)
    env = server_env(root)
    clock = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    with lake.lock("etl", lease_s=600):  # another ETL run holds the lake all night
        failed = run_recs("pipeline", "run", "--now", clock, env=env).returncode != 0
    lines = "".join(
        json.dumps({"eventId": f"late-{n}", "userId": f"U{n % 300}", "itemId": f"I{n % 97}",
                    "event_type": "view"}) + "\n"
        for n in range(late)
    )  # fmt: skip
    ingested = subprocess.run(
        [RECS, "ingest", "-"], input=lines, env=env, capture_output=True, text=True, check=False
    )
    acknowledged = late if ingested.returncode == 0 else 0
    run_recs("flush", env=env)  # the raw zone receives them, as Firehose delivers
    resumed = run_recs("pipeline", "run", "--resume", env=env).returncode == 0
    _, ids = curated(root / "lake")
    quarantined = sum(1 for _ in (root / "lake" / "quarantine").rglob("*.jsonl"))
    return {
        "acknowledged": acknowledged,
        "curated": sum(1 for n in range(late) if f"late-{n}" in ids),
        "first_failed": int(failed),
        "resumed": int(resumed),
        "quarantine_files": quarantined,
    }


def idle_sockets(root: Path, sockets: int = 1_024, checks: int = 50) -> dict[str, int]:
    """One address holds `sockets` idle connections; health checks from another address (a
    load balancer's) and from the same one, meanwhile. Before, all got 503 for 10 s."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < sockets + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, sockets + 256), hard))
    _published(root)
    env, port = server_env(root), free_port()
    server = start_server(port, env)
    held: list[socket.socket] = []
    answered = same_address = 0
    try:
        for _ in range(sockets):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        for _ in range(checks):
            answered += _raw_status(port, _HEALTH, source="127.0.0.2") == 200
            same_address += _raw_status(port, _HEALTH) == 200
            time.sleep(0.05)
    finally:
        for conn in held:
            conn.close()
        server.terminate()
        server.wait(timeout=30)
    return {"checks": checks, "answered": answered, "same_address": same_address}


_HEALTH: Final = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def reliability_rows(
    events: int = 3_000, etl_events: int = 300_000, kills: int = 6, hostile: int = 1_000
) -> tuple[list[Row], list[str]]:
    """The reliability table and its notes."""
    rng = random.Random(17)
    with tempfile.TemporaryDirectory(prefix="recs-bench-reliability-") as folder:
        root = Path(folder)
        server = server_kills(root / "server", events, kills, rng)
        flusher = flusher_kills(root / "flusher", 200_000, kills, rng)
        source = generated_lake(root / "shop", etl_events)
        etl = etl_kills(root / "etl", source, kills, rng)
        race = concurrent_etl(root / "race", source, rounds=3, runs=3)
        attack = hostile_inputs(root / "hostile", hostile, rng)
        batch = big_batch(root / "batch")
        unloadable = unloadable_version(root / "unloadable")
        resume = late_resume(root / "resume")
        sockets = idle_sockets(root / "sockets")
    rows = [
        Row(
            f"API server killed -9 {server['kills']} times under load: acknowledged events in "
            "the curated zone",
            server["landed"],
            "events the API acknowledged (202)",
            server["acknowledged"],
            unit="events",
        ),
        Row(
            f"`recs flush` killed -9 {kills} times: events in the raw zone",
            flusher["landed"],
            "events in the local log",
            flusher["logged"],
            unit="events",
        ),
        Row(
            f"`recs etl` killed -9 {kills} times, then run again: curated rows",
            etl["rows"],
            "a clean run's rows",
            etl["expected"],
            unit="rows",
        ),
        Row(
            f"3 `recs etl` started together, {race['rounds']} times: rounds whose curated zone "
            "equals a clean run's",
            race["matching"],
            "rounds",
            race["rounds"],
            unit="rounds",
        ),
        Row(
            "hostile inputs to `recs serve` (bodies, headers, URLs): 5xx answers",
            attack["server_errors"],
            "inputs tried",
            attack["tried"],
            unit="",
        ),
        Row(
            f"a 100-event batch of {batch['bytes'] / 1024:.0f} KB, head and body in one write: "
            "events accepted",
            batch["accepted"],
            "events sent",
            batch["sent"],
            unit="events",
        ),
        Row(
            "a version that cannot be loaded, published under load: 5xx answers",
            unloadable["server_errors"],
            "answers",
            unloadable["answers"],
            unit="",
        ),
        Row(
            "a night failed at its etl step, resumed an hour later: acknowledged events curated",
            resume["curated"],
            "events acknowledged in that hour",
            resume["acknowledged"],
            unit="events",
        ),
        Row(
            "1,024 idle sockets held from one address: health checks from another answered",
            sockets["answered"],
            "health checks",
            sockets["checks"],
            unit="",
        ),
    ]
    notes = [
        f"Server: {events:,} events in batches of 10 with an Idempotency-Key each, from one "
        f"client that retries what got no answer (or a 409 while a killed request's key is still "
        f"locked); {server['duplicates']} duplicated rows, {server['server_errors']} 5xx, "
        f"{server['unanswered']} batches left unanswered.",
        f"Flusher: 200,000 events in the log, objects of 0.5 MiB; {flusher['working']} of "
        f"{kills} kills landed while it was still working; {flusher['duplicates']} duplicated "
        "events in the raw zone.",
        f"ETL: a generated shop of {etl_events:,} events in 8 MiB batches; {etl['working']} of "
        f"{kills} kills landed while it was still working; same event ids as the clean run: "
        f"{'yes' if etl['same_ids'] else 'no'}; {etl['duplicates']} duplicated rows.",
        f"Concurrent ETL: {race['refused']} of {race['runs']} runs were refused with the lock "
        "message (the others ran, one at a time).",
        f"Hostile inputs: {attack['tried']:,} requests, {attack['no_answer']} closed without an "
        "answer (none expected). The 5xx count must be 0.",
        f"Big batch: {batch['bytes']:,} bytes answered {batch['status']} (the body limit is "
        "1,638,400 bytes; the head's, 16 KiB, counts the head alone).",
        f"Unloadable version: 4 clients asking for personalized, related and health; a second "
        "version lost its similar-items.npz; `recs models promote --force` "
        f"{'refused it' if unloadable['publish_refused'] else 'published it'}, then the store "
        f"was made to name it anyway. {unloadable['no_answer']} requests got no answer, "
        f"{unloadable['other_versions']} answers came from another version than the one loaded, "
        f"and /v1/health {'showed' if unloadable['failure_in_health'] else 'did not show'} the "
        "failure. The 5xx count must be 0.",
        f"Late resume: the night {'failed' if resume['first_failed'] else 'did not fail'} at "
        "etl while another run held the lake; 500 events were acknowledged by the local sink "
        f"and flushed an hour after the run's clock; the resumed run "
        f"{'succeeded' if resume['resumed'] else 'failed'}; {resume['quarantine_files']} "
        "quarantine files.",
        f"Idle sockets: the server's defaults (1,024 per worker, 256 per address, a health "
        f"reserve of 32 with 2 per address). Health checks from the hoarding address itself: "
        f"{sockets['same_address']} of {sockets['checks']} answered (its share of the reserve "
        "is held by its own idle sockets).",
    ]
    return rows, notes
