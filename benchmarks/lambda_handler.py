"""`python -m benchmarks.lambda_handler < SPEC_JSON`: the API's Lambda handler as Lambda bills it.

Run in a fresh process with the serving settings in its environment, as a Lambda instance
starts. It prints one JSON line:
- `cold_s`: importing `serving.handler` and answering the first request (which builds the
  services and loads the live model), from before the first import;
- per route, `p50_ms` and `p99_ms` of the handler's own time on warm invokes (what Lambda
  bills), each route's events cycled from the spec's query strings.

The spec: `{"routes": {name: [path?query, ...]}, "invokes": n}`. With `BENCH_PEER` set, the
handler is the peer instead: a bare Powertools `APIGatewayHttpResolver` whose one route,
`/`, answers `{"ok": true}`.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402 - the clock starts before the first import
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _peer() -> Handler:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    app = APIGatewayHttpResolver()

    @app.get("/")
    def hello() -> dict[str, bool]:
        return {"ok": True}

    resolve: Handler = app.resolve
    return resolve


def _ours() -> Handler:
    from serving.handler import handler

    return handler


def _event(target: str) -> dict[str, Any]:
    from serving.asgi import to_event

    path, _, query = target.partition("?")
    scope = {"type": "http", "method": "GET", "path": path, "query_string": query.encode()}
    return to_event(scope, b"")


def main() -> None:
    """Measure the spec given as JSON on standard input."""
    spec = json.loads(sys.stdin.read())
    peer = bool(os.environ.get("BENCH_PEER"))
    handler = _peer() if peer else _ours()
    from serving.idempotency import LocalRequestContext

    context = LocalRequestContext(timeout_ms=30_000)
    first = handler(_event("/" if peer else "/v1/health"), context)
    cold_s = time.perf_counter() - STARTED
    if first["statusCode"] != 200:
        raise SystemExit(f"health answered {first['statusCode']}: {first['body']}")
    figures: dict[str, Any] = {"cold_s": cold_s, "routes": {}}
    for name, targets in spec["routes"].items():
        events = [_event(target) for target in targets]
        sources: dict[str, int] = {}
        for event in events[:50]:  # warm this route's code and caches, and see what answers
            body = json.loads(handler(event, context)["body"])
            sources[str(body.get("source"))] = sources.get(str(body.get("source")), 0) + 1
        times = []
        for n in range(spec["invokes"]):
            event = events[n % len(events)]
            began = time.perf_counter()
            handler(event, context)
            times.append(time.perf_counter() - began)
        times.sort()
        figures["routes"][name] = {
            "p50_ms": times[len(times) // 2] * 1000,
            "p99_ms": times[int(len(times) * 0.99)] * 1000,
            "sources": sources,
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
