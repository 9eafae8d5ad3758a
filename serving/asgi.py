"""A thin ASGI adapter: each HTTP request becomes an API Gateway HTTP API (2.0) event for the
same handler the Lambda runs, and its 2.0 response goes back over HTTP. There is no second
implementation of the routes.

A worker process runs one request at a time, as a Lambda instance does: the handler, its
Powertools resolver and the model are not shared across threads. Scale out with more
workers (`recs serve --workers N`), as Lambda scales out with more instances.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

from serving.app import Handler
from serving.idempotency import LocalRequestContext
from serving.precheck import allowed_origin, internal_error, too_large
from serving.shapes import MAX_BODY_BYTES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger(__name__)

#: Local requests get API Gateway's integration timeout.
TIMEOUT_MS: Final = 30_000
_TEXT_TYPES: Final = ("application/json", "text/", "application/x-www-form-urlencoded")


def to_event(scope: Scope, body: bytes) -> dict[str, Any]:
    """The API Gateway HTTP API payload 2.0 event API Gateway would send for this request."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    raw_query = scope.get("query_string", b"").decode("latin-1")
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = datetime.now(UTC)
    client = scope.get("client") or ("127.0.0.1", 0)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": scope["path"],
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "domainName": headers.get("host", "localhost"),
            "domainPrefix": "localhost",
            "http": {
                "method": scope["method"],
                "path": scope["path"],
                "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
                "sourceIp": client[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        # API Gateway passes text bodies as they are and base64-encodes the rest.
        content_type = headers.get("content-type", "")
        text = not content_type or content_type.startswith(_TEXT_TYPES)
        try:
            event["body"] = body.decode("utf-8") if text else None
        except UnicodeDecodeError:
            event["body"] = None
        if event["body"] is None:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


class JsonErrors:
    """The outermost ASGI layer: an error that escapes the app is logged with its traceback
    and answered in the API's error shape, a JSON 500, never the server's plain text."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            logger.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            if started:
                raise  # half an answer is out: the server can only close the connection
            await LambdaASGI.send_response(send, internal_error())


class LambdaASGI:
    """An ASGI app that runs a Lambda handler for API Gateway's HTTP API."""

    def __init__(
        self,
        handler: Handler,
        *,
        on_shutdown: Callable[[], None] | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        cors_origins: Collection[str] = (),
    ) -> None:
        self.handler = handler
        self.on_shutdown = on_shutdown
        self.max_body_bytes = max_body_bytes
        #: The API's CORS origins, for the 413 answered here, before the handler.
        self.cors_origins = cors_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One ASGI connection scope."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                # Stop reading: the refusal does not depend on the rest.
                origin = dict(scope.get("headers", [])).get(b"origin", b"").decode("latin-1")
                cors = allowed_origin(origin, self.cors_origins)
                await self.send_response(send, too_large(len(body), more, cors=cors))
                return
        context = LocalRequestContext(timeout_ms=TIMEOUT_MS)
        response = self.handler(to_event(scope, bytes(body)), context)
        await self.send_response(send, response)

    @staticmethod
    async def send_response(send: Send, response: dict[str, Any]) -> None:
        """Send a payload 2.0 response over ASGI."""
        raw = response.get("body") or ""
        body = (
            base64.b64decode(raw)
            if response.get("isBase64Encoded")
            else (raw if isinstance(raw, str) else json.dumps(raw)).encode()
        )
        headers = [
            (name.lower().encode("latin-1"), str(value).encode("latin-1"))
            for name, value in (response.get("headers") or {}).items()
            if name.lower() != "content-length"
        ]
        headers += [(b"set-cookie", c.encode("latin-1")) for c in response.get("cookies") or []]
        headers.append((b"content-length", str(len(body)).encode()))
        await send(
            {
                "type": "http.response.start",
                "status": int(response.get("statusCode", 200)),
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.on_shutdown is not None:
                    self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
