"""The limits one client meets at `recs serve`, and the protocol that enforces them.

uvicorn's httptools protocol has no limit on a request's head, no timeout for a connection
that sends nothing or half a request, and no cap on open connections: one client could stall
a worker. `GuardedHttpToolsProtocol` adds the three limits API Gateway enforces in front of
the Lambda, and answers every refusal (and every malformed request) in the API's one error
shape, `{"error": "..."}`, then closes the connection. Idle keep-alive connections are closed
by uvicorn's `timeout_keep_alive`.

This module imports no part of the app, so the command line can read its defaults without
loading the API (whose logger reads its level when first imported).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

#: Where `recs serve --log-file` tells its workers to log (rotated), through the environment.
LOG_FILE_VARIABLE: Final = "RECS_SERVE_LOG_FILE"


@dataclass(frozen=True)
class ServerLimits:
    """What one client may ask of a worker."""

    #: Seconds to receive a whole request (head and body), from its first byte or from the
    #: connection's start; a connection that sends nothing in that time is closed.
    request_timeout_s: float = 10.0
    #: Bytes of a request's line and headers (API Gateway allows 10 KiB of headers).
    max_head_bytes: int = 16 * 1024
    #: Bytes of the URL alone.
    max_url_bytes: int = 8 * 1024
    #: Open connections per worker; one more is answered 503 and closed.
    max_connections: int = 1024


def error_response(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response in the API's error shape, closing the connection."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _Refused(Exception):
    """Stops the parser mid-request; the refusal is already on its way."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with limits on a request's size, time and connections."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ServerLimits | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits or ServerLimits()
        self._head_bytes = 0
        self._url_bytes = 0
        self._in_head = True
        self._started = False  # some bytes of the current request have arrived
        self._read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection; refuse it over the cap; else start the read clock."""
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "The server has too many open connections; retry shortly")
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the read clock with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Count the head's bytes before parsing them; start the read clock for a request."""
        if self.transport.is_closing():
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(
                    431,
                    f"The request line and headers are over {self.limits.max_head_bytes} "
                    "bytes; send a shorter request",
                )
                return
        self._started = True
        self._arm()
        super().data_received(data)

    def on_url(self, url: bytes) -> None:
        """Refuse a URL over its limit before it is read whole."""
        self._url_bytes += len(url)
        if self._url_bytes > self.limits.max_url_bytes:
            self._refuse(
                414,
                f"The URL is over {self.limits.max_url_bytes} bytes; send fewer or shorter "
                "parameters (exclude takes at most 4096 characters)",
            )
            raise _Refused
        super().on_url(url)

    def on_headers_complete(self) -> None:
        """The head is whole: the body comes next, still on the read clock."""
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request is whole: stop its clock and ready the counters for the next one."""
        self._disarm()
        self._in_head, self._started = True, False
        self._head_bytes = self._url_bytes = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """Malformed HTTP, in the API's error shape (uvicorn's is plain text)."""
        del msg
        self._refuse(400, "The request is not valid HTTP/1.1")

    def _arm(self) -> None:
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(self.limits.request_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if not self._started:
            self.transport.close()  # an idle connection: nothing to answer
            return
        self._refuse(
            408,
            f"The request did not arrive whole within {self.limits.request_timeout_s:g} s; "
            "send it again, without pauses",
        )

    def _refuse(self, status: int, message: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.logger.warning("refused a connection: %s %s", status, message)
            self.transport.write(error_response(status, message))
            self.transport.close()
