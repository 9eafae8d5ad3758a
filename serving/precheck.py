"""Before routing: what a request gets without reaching a route.

Powertools runs request validation before any middleware, so these checks run in the
handler, ahead of the resolver: a missing or unknown API key (401), a body that is too large
(413), compressed or not JSON (415), or not UTF-8 (400). Each answer is a payload 2.0
response, with the CORS header a browser needs to read it (`recs serve` cuts a body off at
the limit before the handler sees it, and answers that 413 the same way, in `serving.asgi`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Collection, Iterable, Mapping
from http import HTTPStatus
from typing import Any, Final

from common.contract import MAX_EVENT_BYTES
from serving.shapes import DOCS_PATH, INTERNAL_ERROR, MAX_BATCH, MAX_BODY_BYTES

#: Paths a client needs no API key for: a load balancer's health check, and the docs.
OPEN_PATHS: Final = frozenset({"/health", "/v1/health", DOCS_PATH})


def header(event: Mapping[str, Any], name: str) -> str | None:
    headers = event.get("headers") or {}
    value = headers.get(name)
    if value is None:
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name)
    return None if value is None else str(value)


KEY_REFUSED: Final = "Missing or unknown X-Api-Key header; ask the API's operator for a key"


def key_accepted(given: str, api_keys: Iterable[str]) -> bool:
    """Whether `given` is one of the keys, compared in constant time.

    The comparison is of bytes: `hmac.compare_digest` raises on a str that is not ASCII, and
    a header may hold any character."""
    offered = _key_bytes(given)
    return any(hmac.compare_digest(offered, _key_bytes(key)) for key in api_keys)


def _key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def refuse(
    event: Mapping[str, Any], api_keys: Collection[str], cors_origins: Collection[str]
) -> dict[str, Any] | None:
    """A 2.0 response for a request that must not reach a route, or None to go on."""
    context = event.get("requestContext") or {}
    method = str((context.get("http") or {}).get("method", "GET")).upper()
    path = str(event.get("rawPath") or "/")
    status, message = 0, ""
    if method == "OPTIONS":
        return None
    given = header(event, "x-api-key") or ""
    if api_keys and path not in OPEN_PATHS and not key_accepted(given, api_keys):
        status, message = 401, KEY_REFUSED
    body = event.get("body")
    if not status and body:
        size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(str(body).encode())
        if size > MAX_BODY_BYTES:
            return too_large(size, cors=allowed_origin(header(event, "origin"), cors_origins))
    writes = method in ("POST", "PUT", "PATCH") and path.endswith("/events")
    encoding = (header(event, "content-encoding") or "identity").strip().lower()
    if not status and writes and encoding != "identity":
        status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
        message = (
            f"Content-Encoding {encoding} is not supported; send the body uncompressed "
            "(a batch of 100 events is small)"
        )
    if not status and writes:
        # Exactly what the resolver parses as JSON: anything else would reach it and be
        # refused in another shape.
        content_type, *parameters = (header(event, "content-type") or "").lower().split(";")
        content_type = content_type.strip()
        charset = next(
            (
                value.strip().strip('"')
                for name, _, value in (p.partition("=") for p in parameters)
                if name.strip() == "charset"
            ),
            "utf-8",
        )
        if content_type != "application/json":
            status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
            message = (
                f"Content-Type must be application/json (got {content_type or 'none'}); "
                "send the events as JSON"
            )
        elif charset not in ("utf-8", "utf8"):
            # JSON is UTF-8 (RFC 8259); a body in another charset would be read as mojibake.
            status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
            message = f"charset must be utf-8 (got {charset}); send the events as UTF-8 JSON"
    if not status and body and not _utf8(body, bool(event.get("isBase64Encoded"))):
        status, message = 400, "Body is not UTF-8 text; send the events as UTF-8 JSON"
    if not status:
        return None
    return _refusal(event, cors_origins, int(status), message)


def _utf8(body: str, base64_encoded: bool) -> bool:
    """Whether a body is UTF-8 text: API Gateway base64-encodes what it cannot pass as text."""
    if not base64_encoded:
        return True
    try:
        base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return True


def allowed_origin(origin: str | None, cors_origins: Collection[str]) -> str | None:
    """The origin to name in Access-Control-Allow-Origin, or None for no CORS header."""
    if origin and (origin in cors_origins or "*" in cors_origins):
        return origin
    return None


def too_large(size: int, partial: bool = False, *, cors: str | None = None) -> dict[str, Any]:
    """The 413 answer for a body of `size` bytes (at least, if `partial`), readable by a page
    from the `cors` origin."""
    headers = {"Content-Type": "application/json"}
    if cors is not None:
        headers["Access-Control-Allow-Origin"] = cors
    return {
        "statusCode": 413,
        "headers": headers,
        "body": json.dumps(
            {
                "error": f"Body is {'over ' if partial else ''}{size} bytes; the limit is "
                f"{MAX_BODY_BYTES} ({MAX_BATCH} events of at most {MAX_EVENT_BYTES} bytes). "
                "Send smaller batches"
            }
        ),
        "isBase64Encoded": False,
    }


def internal_error() -> dict[str, Any]:
    """The 500 answer for a request that failed inside the API (the log has why)."""
    return {
        "statusCode": 500,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"error": INTERNAL_ERROR}),
        "isBase64Encoded": False,
    }


def _refusal(
    event: Mapping[str, Any], cors_origins: Collection[str], status: int, message: str
) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    origin = allowed_origin(header(event, "origin"), cors_origins)
    if origin is not None:
        headers["Access-Control-Allow-Origin"] = origin
    return {
        "statusCode": status,
        "headers": headers,
        "body": json.dumps({"error": message}),
        "isBase64Encoded": False,
    }
