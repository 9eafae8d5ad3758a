"""`recs serve` with its pages: a demo storefront at `/` and an ops page at `/ops`.

The API stays exactly what the Lambda serves (`serving.server.create_app`); this wraps it:
- `/` and `/ops` are static pages (`orchestration/ui/static/`), plain HTML, CSS and JavaScript
  with no build step, that call the public API from the browser like any client would;
- `/ui/...` answers what the pages need beside the API: the catalog's names, the ops picture
  from the lake, this worker's API counters;
- everything else goes to the API, timed, so the ops page can show its latency and errors.

No page ever holds an API key: with `RECS_API_KEYS` set, a page asks for one, keeps it in the
tab's sessionStorage, and sends it as `X-Api-Key`; the `/ui/` answers need it too.
`recs serve --no-ui` serves the API alone. The storefront is a demo and says so.
"""

from __future__ import annotations

import json
import mimetypes
import re
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

from common.lake import Lake, open_lake
from orchestration.ui import data
from serving.asgi import App, JsonErrors, Receive, Scope, Send
from serving.precheck import KEY_REFUSED, key_accepted

STATIC: Final = Path(__file__).with_name("static")
PAGES: Final = {"/": "store.html", "/ops": "ops.html", "/ops/": "ops.html"}
_STATIC_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9]+)+")
#: Pages: no framing by other sites, no inline script, our own origin only.
_PAGE_HEADERS: Final = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     b"connect-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]  # fmt: skip


class UiApp:
    """The pages, their `/ui/` answers, and the API behind them, timed."""

    def __init__(self, api: App, lake: Lake, api_keys: frozenset[str]) -> None:
        self.api = api
        self.lake = lake
        self.api_keys = api_keys
        self.counters = data.Counters()
        self.cache = data.Cached()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ASGI scope."""
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        path = scope["path"]
        if path in PAGES or path.startswith("/ui/static/"):
            if scope["method"] not in ("GET", "HEAD"):
                await _json(send, 405, {"error": f"{path} answers GET only"}, allow=b"GET, HEAD")
                return
            await self._static(path, send, head=scope["method"] == "HEAD")
            return
        if path.startswith("/ui/"):
            await self._answer(scope, send)
            return
        await self._timed(scope, receive, send)

    async def _timed(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def noting(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.api(scope, receive, noting)
        finally:
            self.counters.record(status, (time.perf_counter() - started) * 1000)

    async def _static(self, path: str, send: Send, *, head: bool) -> None:
        name = PAGES.get(path) or path.removeprefix("/ui/static/")
        # The folder is flat: a name is one file's, never a path or a byte the file system
        # refuses (a NUL made `resolve` raise, and the answer a 500).
        file = STATIC / name
        if not _STATIC_NAME.fullmatch(name) or not file.is_file():
            await _json(send, 404, {"error": f"no page at {path}; the store is at /"})
            return
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        body = file.read_bytes()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", kind.encode()),
                    (b"content-length", str(len(body)).encode()),
                    *_PAGE_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if head else body})

    async def _answer(self, scope: Scope, send: Send) -> None:
        path = scope["path"]
        if scope["method"] != "GET":
            await _json(send, 405, {"error": f"{path} answers GET only"}, allow=b"GET")
            return
        if path == "/ui/config":
            # What a page needs to know before its first call: never a key itself.
            await _json(send, 200, {"keyRequired": bool(self.api_keys), "demo": True})
            return
        if self.api_keys:
            given = dict(scope.get("headers", [])).get(b"x-api-key", b"").decode("latin-1")
            if not key_accepted(given, self.api_keys):  # as the API checks its own routes
                await _json(send, 401, {"error": KEY_REFUSED})
                return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            if path == "/ui/catalog":
                found: Any = self.cache.get("catalog", lambda: data.catalog(self.lake))
            elif path == "/ui/items":
                ids = [i for i in ",".join(query.get("ids", [])).split(",") if i][:200]
                found = {"items": data.items(self.lake, ids)}
            elif path == "/ui/ops":
                found = {**self.cache.get("ops", lambda: data.ops(self.lake))}
                found["api"] = self.counters.summary()
            else:
                await _json(send, 404, {"error": f"no {path}: /ui/ answers catalog, items, ops"})
                return
        except Exception as exc:  # noqa: BLE001 - a page shows why, the server goes on
            await _json(send, 503, {"error": f"{type(exc).__name__}: {exc}"})
            return
        await _json(send, 200, found)


async def _json(send: Send, status: int, body: Any, *, allow: bytes = b"") -> None:
    payload = json.dumps(body, default=str).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *([(b"allow", allow)] if allow else []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def create_app() -> JsonErrors:
    """One worker's app with its pages (uvicorn's `--factory`, as `serving.server`'s)."""
    from serving.server import create_app as create_api
    from serving.settings import ServingSettings

    settings = ServingSettings.from_env()
    return JsonErrors(UiApp(create_api(), open_lake(settings.lake), settings.api_keys))
