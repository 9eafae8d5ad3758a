"""The limits one client meets at `recs serve`, and the protocol that enforces them.

uvicorn's httptools protocol has no limit on a request's head, no timeout for a connection
that sends nothing or half a request, and no cap on open connections: one client could stall
a worker. `GuardedHttpToolsProtocol` adds the three limits API Gateway enforces in front of
the Lambda, and answers every refusal (and every malformed request) in the API's one error
shape, `{"error": "..."}`, then closes the connection. Idle keep-alive connections are closed
by uvicorn's `timeout_keep_alive`.

Connections are capped per worker and per client address, so one client holding idle sockets
cannot lock the others out; past either cap, a small reserve of connections still answers
the health check (and refuses every other path with 503), so a load balancer does not take a
busy worker for a dead one. A refusal that comes while earlier pipelined requests of the
connection are still owed their answers waits for them: they are answered first.

This module imports no part of the app, so the command line can read its defaults without
loading the API (whose logger reads its level when first imported).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState


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
    #: Open connections per worker; past it, only the health reserve is left.
    max_connections: int = 1024
    #: Open connections from one client address, per worker; past it, only the health reserve
    #: is left to that client. Behind a reverse proxy every client shares the proxy's address:
    #: raise it there to the proxy's own connection limit.
    max_connections_per_client: int = 256
    #: Connections past either cap that may still ask for the health check; one more is
    #: answered 503 and closed.
    health_reserve: int = 32


#: Connections of the health reserve one client address may hold: a client holding idle
#: sockets cannot use up the reserve that the others' health checks need.
RESERVE_PER_CLIENT: Final = 2
#: The paths a connection of the health reserve may ask for.
HEALTH_PATHS: Final = frozenset({b"/v1/health", b"/health"})
#: How the head of a request ends (llhttp also takes bare line feeds).
_HEAD_ENDS: Final = (b"\r\n\r\n", b"\n\n")


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
        self._head_tail = b""  # the last bytes of the head so far, to find its end across reads
        self._url_bytes = 0
        self._in_head = True
        self._started = False  # some bytes of the current request have arrived
        self._read_timer: asyncio.TimerHandle | None = None
        self._peer = ""  # the client's address
        self.health_only = False  # a connection of the health reserve
        self._health_refusal = ""  # why, told to its requests for other paths
        self._refusal: bytes | None = None  # the refusal owed, once the answers before it are sent

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection; past the caps, into the health reserve or refused; then start
        the read clock."""
        super().connection_made(transport)
        self._peer = self.client[0] if self.client else ""
        limits = self.limits
        peers = [c for c in self.connections if isinstance(c, GuardedHttpToolsProtocol)]
        regular = [c for c in peers if not c.health_only and c is not self]
        same_client = sum(1 for c in regular if c._peer == self._peer)
        if len(regular) >= limits.max_connections:
            reason = "The server has too many open connections"
        elif same_client >= limits.max_connections_per_client:
            reason = f"This client has {same_client} connections open, the most one client may"
        else:
            self._arm()
            return
        reserve = [c for c in peers if c.health_only]
        mine = sum(1 for c in reserve if c._peer == self._peer)
        if len(reserve) >= limits.health_reserve or mine >= RESERVE_PER_CLIENT:
            self._refuse(503, f"{reason}; close some, or retry shortly")
            return
        self.health_only = True
        self._health_refusal = f"{reason}; only /v1/health is answered on this connection"
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the read clock with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Count the head's bytes before parsing them; start the read clock for a request."""
        if self.transport.is_closing() or self._refusal is not None:
            return
        if self._in_head:
            self._head_bytes += self._head_part(data)
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

    def _head_part(self, data: bytes) -> int:
        """How many bytes of `data` belong to the current request's head: up to its blank
        line, so that a body sent in the same write is not counted as head."""
        window = self._head_tail + data
        ends = [found + len(end) for end in _HEAD_ENDS if (found := window.find(end)) >= 0]
        if not ends:
            self._head_tail = window[-3:]
            return len(data)
        self._head_tail = b""
        return max(0, min(ends) - (len(window) - len(data)))

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
        """The head is whole: the body comes next, still on the read clock. On a connection
        of the health reserve, anything but the health check is refused."""
        self._in_head = False
        if self.health_only and httptools.parse_url(self.url).path not in HEALTH_PATHS:
            self._refuse(503, self._health_refusal)
            raise _Refused
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request is whole: stop its clock and ready the counters for the next one."""
        self._disarm()
        self._in_head, self._started = True, False
        self._head_bytes = self._url_bytes = 0
        self._head_tail = b""
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """An answer went out: send a refusal that waited for it, once none is left owed."""
        if self._refusal is not None and not self._whole_request_waiting():
            self.server_state.total_requests += 1
            self._send_refusal()
            return
        super().on_response_complete()

    def _whole_request_waiting(self) -> bool:
        """Whether a request received whole still waits for its answer: a refusal goes out
        after it. A request still missing its body is the one refused, so it does not count."""
        waiting = [cycle for cycle, _ in self.pipeline]
        if self.cycle is not None and not self.cycle.response_complete:
            waiting.append(self.cycle)
        return any(not cycle.more_body for cycle in waiting)

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
        """Answer `status` and close: at once, or after the answers still owed to earlier
        pipelined requests. Nothing more is read from the connection."""
        self._disarm()
        if self.transport.is_closing() or self._refusal is not None:
            return
        self.logger.warning("refused a connection: %s %s", status, message)
        self._refusal = error_response(status, message)
        if self._whole_request_waiting():
            self.flow.pause_reading()
            return
        self._send_refusal()

    def _send_refusal(self) -> None:
        if self._refusal is not None and not self.transport.is_closing():
            self.transport.write(self._refusal)
            self.transport.close()
