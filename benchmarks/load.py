"""A small HTTP/1.1 load generator, run in its own process beside the server under test.

`python -m benchmarks.load < SPEC_JSON` prints one JSON line of figures. Two modes:
- closed: `connections` keep-alive connections each send the next request as soon as the
  last answer arrives, for `seconds`: the most requests/s the server gives;
- open: requests are sent on a fixed schedule (`rate` per second) over a pool of
  connections, and each latency counts from when the request was due, so a stalled server
  cannot hide its queue (no coordinated omission).
Requests cycle through the `requests` list: raw request bytes, prepared by the caller.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one request, read its whole answer; returns the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def closed(
    host: str, port: int, requests: list[bytes], connections: int, seconds: float
) -> dict[str, Any]:
    """Each connection sends back to back for `seconds`."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal errors
        reader, writer = await _connect(host, port)
        n = offset
        while time.perf_counter() < stop:
            request = requests[n % len(requests)]
            n += connections
            started = time.perf_counter()
            status = await _exchange(reader, writer, request)
            latencies.append(time.perf_counter() - started)
            if status >= 500:
                errors += 1
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    elapsed = time.perf_counter() - began
    return _figures(latencies, elapsed, errors)


async def open_loop(
    host: str, port: int, requests: list[bytes], rate: float, seconds: float
) -> dict[str, Any]:
    """`rate` requests per second on schedule; latency from the scheduled time."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(await _connect(host, port))
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    began = time.perf_counter()

    async def one(n: int) -> None:
        nonlocal errors
        due = began + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        connection = await pool.get()
        status = await _exchange(*connection, requests[n % len(requests)])
        pool.put_nowait(connection)
        latencies.append(time.perf_counter() - due)
        if status >= 500:
            errors += 1

    await asyncio.gather(*(one(n) for n in range(total)))
    return _figures(latencies, time.perf_counter() - began, errors)


def _figures(latencies: list[float], elapsed: float, errors: int) -> dict[str, Any]:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {
        "requests": len(ordered),
        "rps": len(ordered) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": errors,
    }


def main() -> None:
    """Run the spec given as JSON on standard input."""
    spec = json.loads(sys.stdin.read())
    requests = [r.encode("latin-1") for r in spec["requests"]]
    if spec["mode"] == "closed":
        figures = asyncio.run(
            closed(spec["host"], spec["port"], requests, spec["connections"], spec["seconds"])
        )
    else:
        figures = asyncio.run(
            open_loop(spec["host"], spec["port"], requests, spec["rate"], spec["seconds"])
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
