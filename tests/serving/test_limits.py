"""`recs serve` as a production server: one client cannot stall it, and what it refuses is JSON.

Before: a 128 MB header was parsed for 18 s, a connection that sent nothing (or half a
request) stayed open forever, 20,000 idle sockets took the server down, and malformed
requests got uvicorn's plain-text 400.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving import server
from serving.store import SQLiteStore
from tests.conftest import free_port

TIMEOUT_S = 1.0
MAX_CONNECTIONS = 6
PER_CLIENT = 4
RESERVE = 3


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Path]]:
    """`recs serve` with short limits over an empty lake; yields its port, log and output."""
    root = tmp_path_factory.mktemp("serve")
    (root / "lake" / "raw").mkdir(parents=True)
    port = free_port()
    output = root / "stdout.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECS_", "POWERTOOLS_"))}
    env["RECS_MODEL_CHECK_SECONDS"] = "0"
    env["PYTHONUNBUFFERED"] = "1"  # what the server prints is in the file when it is read
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("recs")),
                "serve",
                "--workers",
                "1",  # the caps are per worker
                "--port",
                str(port),
                "--lake",
                "lake",
                "--no-metrics",
                "--log-file",
                "var/serve.log",
                "--request-timeout",
                str(TIMEOUT_S),
                "--max-connections",
                str(MAX_CONNECTIONS),
                "--max-connections-per-client",
                str(PER_CLIENT),
                "--health-reserve",
                str(RESERVE),
            ],
            cwd=root,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            for _ in range(150):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    time.sleep(0.1)
            yield port, root / "var" / "serve.log", output
        finally:
            process.terminate()
            process.wait(timeout=30)


def _exchange(
    port: int, data: bytes, wait: float = 5.0, source: str = "127.0.0.1"
) -> tuple[float, bytes]:
    """Send raw bytes in one write (from the `source` loopback address); return the seconds
    until the server closed, and what it sent."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), source_address=(source, 0)) as conn:
        conn.settimeout(wait)
        if data:
            conn.sendall(data)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return time.monotonic() - started, received


def _send_while_reading(port: int, request: bytes) -> bytes:
    """Send a large request while reading the answer, as curl does: a server may answer (and
    close) before the body is all sent."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.settimeout(20)

        def send() -> None:
            with contextlib.suppress(OSError):  # the server closed after answering
                conn.sendall(request)

        sender = threading.Thread(target=send)
        sender.start()
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        sender.join()
    return received


def _status_and_error(response: bytes) -> tuple[int, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower()
    return int(head.split()[1]), json.loads(body)["error"]


def _get(path: str, extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + extra + b"\r\n"


def _get_once(path: str) -> bytes:
    """A GET that asks the server to close the connection after its answer."""
    return _get(path, b"Connection: close\r\n")


def test_an_oversized_head_is_a_431_at_once(served: tuple[int, Path, Path]) -> None:
    port, _, _ = served
    seconds, response = _exchange(port, _get("/v1/health", b"X-Big: " + b"a" * 100_000 + b"\r\n"))
    assert seconds < TIMEOUT_S
    status, message = _status_and_error(response)
    assert status == 431
    assert "over 16384 bytes" in message


def test_an_oversized_url_is_a_414(served: tuple[int, Path, Path]) -> None:
    port, _, _ = served
    _, response = _exchange(port, _get("/v1/health?x=" + "a" * 10_000))
    assert _status_and_error(response) == (
        414,
        "The URL is over 8192 bytes; send fewer or shorter parameters (exclude takes at most "
        "4096 characters)",
    )


def test_malformed_http_is_a_json_400(served: tuple[int, Path, Path]) -> None:
    port, _, _ = served
    _, response = _exchange(port, b"\x16\x03\x01\x02 not http\r\n\r\n")
    assert _status_and_error(response) == (400, "The request is not valid HTTP/1.1")


def test_a_silent_connection_is_closed(served: tuple[int, Path, Path]) -> None:
    port, _, _ = served
    seconds, response = _exchange(port, b"")
    assert response == b""
    assert TIMEOUT_S * 0.9 <= seconds < TIMEOUT_S + 2


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\n",
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"userId":',
    ],
    ids=["half a head", "half a body"],
)
def test_half_a_request_is_a_408_after_the_timeout(
    served: tuple[int, Path, Path], partial: bytes
) -> None:
    port, _, _ = served
    seconds, response = _exchange(port, partial)
    assert TIMEOUT_S * 0.9 <= seconds < TIMEOUT_S + 2
    status, message = _status_and_error(response)
    assert status == 408
    assert "within 1 s" in message


def _idle(port: int, count: int, source: str) -> list[socket.socket]:
    return [
        socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        for _ in range(count)
    ]


def _health_answered(response: bytes) -> bool:
    """The app's own health answer (503 with no model published yet), not a refusal."""
    body = response.partition(b"\r\n\r\n")[2]
    return b'"modelVersion"' in body


def test_one_client_holding_idle_sockets_locks_out_neither_others_nor_health_checks(
    served: tuple[int, Path, Path],
) -> None:
    """Before: 1,024 idle sockets from one address got every new client a 503 for 10 s."""
    port, _, _ = served
    idle = _idle(port, PER_CLIENT, "127.0.0.1")
    try:
        time.sleep(0.2)
        # Another address still gets the whole API.
        _, response = _exchange(
            port, _get_once("/v1/recommendations/related?itemId=I1"), source="127.0.0.2"
        )
        # (the app's own answer: no model is published in this lake)
        assert _status_and_error(response)[1].startswith("No model version is published yet")
        # The hoarding address may still ask for health, and for nothing else.
        _, response = _exchange(port, _get_once("/v1/health"))
        assert _health_answered(response)
        _, response = _exchange(port, _get_once("/v1/recommendations/related?itemId=I1"))
        status, message = _status_and_error(response)
        assert status == 503
        assert message == (
            f"This client has {PER_CLIENT} connections open, the most one client may; only "
            "/v1/health is answered on this connection"
        )
    finally:
        for conn in idle:
            conn.close()


def test_past_the_caps_and_the_reserve_connections_are_refused_and_the_server_recovers(
    served: tuple[int, Path, Path],
) -> None:
    port, _, _ = served
    idle = _idle(port, PER_CLIENT, "127.0.0.1") + _idle(
        port, MAX_CONNECTIONS - PER_CLIENT, "127.0.0.3"
    )
    try:
        time.sleep(0.2)
        # Past the worker's cap, every address is left the health reserve alone.
        _, response = _exchange(port, _get_once("/v1/health"), source="127.0.0.4")
        assert _health_answered(response)
        # One address may hold 2 connections of the reserve, and the others may use the rest.
        idle += _idle(port, 2, "127.0.0.4")
        time.sleep(0.2)
        _, response = _exchange(port, _get("/v1/health"), source="127.0.0.4")
        assert _status_and_error(response) == (
            503,
            "The server has too many open connections; close some, or retry shortly",
        )
        _, response = _exchange(port, _get_once("/v1/health"), source="127.0.0.5")
        assert _health_answered(response)
        idle += _idle(port, RESERVE - 2, "127.0.0.5")  # now the reserve is full
        time.sleep(0.2)
        _, response = _exchange(port, _get("/v1/health"), source="127.0.0.6")
        assert _status_and_error(response)[0] == 503
    finally:
        for conn in idle:
            conn.close()
    time.sleep(0.5)
    _, response = _exchange(port, _get_once("/v1/health"))
    assert _health_answered(response)


def _post_events(count: int, extra_headers: bytes = b"") -> bytes:
    """A POST of `count` valid events, head and body in one buffer (as curl and urllib send)."""
    body = json.dumps(
        [
            {
                "userId": f"U{n}",
                "itemId": f"I{n}",
                "event_type": "view",
                "ts": "2026-11-30T18:30:00Z",
                "properties": {"note": "x" * 200},
            }
            for n in range(count)
        ]
    ).encode()
    return (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + extra_headers
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )


def test_a_batch_over_the_head_limit_in_one_write_is_accepted(
    served: tuple[int, Path, Path],
) -> None:
    """Before: the body sent in the head's write was counted as head, and 29 KB got a 431."""
    port, _, _ = served
    request = _post_events(100)
    assert len(request) > 30_000
    _, response = _exchange(port, request)
    assert response.startswith(b"HTTP/1.1 202"), response[:300]
    assert json.loads(response.partition(b"\r\n\r\n")[2])["accepted"] == 100


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"[" + b" " * 20_000_000 + b"]", b"Content-Type: application/json\r\n", 413),
        (gzip.compress(b"[" + b" " * 5_000_000 + b"]"), b"Content-Encoding: gzip\r\n", 415),
        (b"[" * 10_000 + b"]" * 10_000, b"Content-Type: application/json\r\n", 400),
    ],
    ids=["20 MB", "gzip bomb", "nested 10,000 deep"],
)
def test_bodies_that_are_too_large_or_malformed_get_their_own_status(
    served: tuple[int, Path, Path], body: bytes, headers: bytes, status: int
) -> None:
    port, _, _ = served
    request = (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\n"
        + headers
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    assert _status_and_error(_send_while_reading(port, request))[0] == status


def test_pipelined_requests_are_answered_before_a_malformed_one_is_refused(
    served: tuple[int, Path, Path],
) -> None:
    """Before: two valid pipelined requests and a malformed one got a single 400."""
    port, _, _ = served
    _, response = _exchange(port, _get("/v1/health") * 2 + b"NOT HTTP AT ALL\r\n\r\n")
    answers = response.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 3
    assert all(b"modelVersion" in answer for answer in answers[:2])
    assert answers[2].startswith(b"400")
    assert b"The request is not valid HTTP/1.1" in answers[2]


def test_the_log_goes_to_its_file_for_its_owner_and_no_metrics_are_printed(
    served: tuple[int, Path, Path],
) -> None:
    port, log, output = served
    # Powertools flushes a metric's values once it holds 100, even when metrics are disabled:
    # past that many, an EMF blob would show in the output unless none are recorded.
    for _ in range(120):
        _exchange(port, _get_once("/v1/health"))
    time.sleep(0.2)
    assert log.stat().st_mode & 0o777 == 0o600
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(r.get("message") == "request" and r.get("path") == "/v1/health" for r in records)
    printed = output.read_text()
    assert "_aws" not in printed  # no EMF metric, not even the cold start
    assert '"message":"request"' not in printed


def test_the_log_file_rotates_and_every_file_is_its_owners_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the files rotation started were 0644."""
    monkeypatch.setattr(server, "LOG_BYTES", 2_000)
    handler = server.PrivateRotatingFileHandler(
        tmp_path / "serve.log", maxBytes=2_000, backupCount=server.LOG_BACKUPS, encoding="utf-8"
    )
    logger = logging.getLogger("tests.rotation")
    logger.addHandler(handler)
    try:
        for n in range(1_000):
            logger.warning("line %d of a long day", n)
    finally:
        logger.removeHandler(handler)
        handler.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(
        ["serve.log", *(f"serve.log.{n}" for n in range(1, server.LOG_BACKUPS + 1))]
    )
    assert all((tmp_path / name).stat().st_size <= 2_000 for name in files)
    assert {(tmp_path / name).stat().st_mode & 0o777 for name in files} == {0o600}


def test_every_package_logs_to_the_log_file_not_to_the_output(
    served: tuple[int, Path, Path],
) -> None:
    """Before: only the request log and uvicorn's went to --log-file; the flusher's and the
    model loader's tracebacks went to stderr (serve.out), unrotated."""
    port, log, output = served
    store = log.parent / "online-store.sqlite3"
    SQLiteStore(store).activate("20990101T000000Z")  # a version the lake lacks
    try:
        _, response = _exchange(port, _get_once("/v1/health"))
        assert b"20990101T000000Z" in response
        time.sleep(0.2)
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert any(
            r["level"] == "ERROR" and "20990101T000000Z cannot be loaded" in r["message"]
            for r in records
        )
        assert "20990101T000000Z" not in output.read_text()
    finally:
        with sqlite3.connect(store) as con:
            con.execute("DELETE FROM pointer")
