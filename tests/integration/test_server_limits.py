"""`recs serve` as a production server: one client cannot stall it, and what it refuses is JSON.

Before: a 128 MB header was parsed for 18 s, a connection that sent nothing (or half a
request) stayed open forever, 20,000 idle sockets took the server down, and malformed
requests got uvicorn's plain-text 400.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving import server
from tests.conftest import free_port

TIMEOUT_S = 1.0
MAX_CONNECTIONS = 6


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Path]]:
    """`recs serve` with short limits over an empty lake; yields its port, log and output."""
    root = tmp_path_factory.mktemp("serve")
    (root / "lake" / "raw").mkdir(parents=True)
    port = free_port()
    output = root / "stdout.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECS_", "POWERTOOLS_"))}
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("recs")),
                "serve",
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


def _exchange(port: int, data: bytes, wait: float = 5.0) -> tuple[float, bytes]:
    """Send raw bytes; return the seconds until the server closed, and what it sent."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as conn:
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


def _status_and_error(response: bytes) -> tuple[int, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower()
    return int(head.split()[1]), json.loads(body)["error"]


def _get(path: str, extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + extra + b"\r\n"


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


def test_connections_over_the_cap_are_refused_and_the_server_recovers(
    served: tuple[int, Path, Path],
) -> None:
    port, _, _ = served
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        _, response = _exchange(port, _get("/v1/health"))
        assert _status_and_error(response) == (
            503,
            "The server has too many open connections; retry shortly",
        )
    finally:
        for conn in idle:
            conn.close()
    time.sleep(TIMEOUT_S + 0.5)
    _, response = _exchange(port, _get("/v1/health", b"Connection: close\r\n"))
    assert response.startswith(b"HTTP/1.1 503")  # no model yet: the app answers, in JSON
    assert b'"modelVersion": null' in response


def test_the_log_goes_to_its_file_for_its_owner_and_no_metrics_are_printed(
    served: tuple[int, Path, Path],
) -> None:
    port, log, output = served
    _exchange(port, _get("/v1/health", b"Connection: close\r\n"))
    time.sleep(0.2)
    assert log.stat().st_mode & 0o777 == 0o600
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(r.get("message") == "request" and r.get("path") == "/v1/health" for r in records)
    printed = output.read_text()
    assert "_aws" not in printed  # no EMF metric, not even the cold start
    assert '"message":"request"' not in printed


def test_the_log_file_rotates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "LOG_BYTES", 2_000)
    names = (server.SERVICE, "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in names}
    try:
        server.log_to_file(tmp_path / "serve.log")
        for n in range(100):
            logging.getLogger("uvicorn.error").warning("line %d of a long day", n)
    finally:
        for name, (handlers, propagate) in saved.items():
            for handler in logging.getLogger(name).handlers:
                handler.close()
            logging.getLogger(name).handlers = handlers
            logging.getLogger(name).propagate = propagate
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(
        ["serve.log", *(f"serve.log.{n}" for n in range(1, server.LOG_BACKUPS + 1))]
    )
    assert all((tmp_path / name).stat().st_size <= 2_000 for name in files)
