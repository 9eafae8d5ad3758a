"""`POST /events`: parse the batch (a pure function, `parse_batch`), refuse it whole if any
event is bad, then store it, once per Idempotency-Key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

from common.contract import Event, parse_event
from common.errors import InvalidEvent
from ingestion.errors import DeliveryFailed
from serving.services import SERVICE, Services, count, dumps, error, logger, services_of
from serving.shapes import (
    ERRORS,
    MAX_BATCH,
    MAX_BODY_BYTES,
    Accepted,
    ErrorBody,
    EventsBody,
    IdempotencyKeyHeader,
    doc,
)

#: What the Idempotency-Key records are stored under: `recs-api.events#<hash>`.
IDEMPOTENCY_PREFIX: Final = f"{SERVICE}.events"


@dataclass
class Batch:
    """A request's events, and each refused one's index and reason."""

    events: list[Event] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)


def parse_batch(
    records: list[Any],
    *,
    batch: bool,
    idempotency_key: str | None,
    now: datetime,
    scope: str,
) -> Batch:
    """Each record checked against the event contract, and no event id given twice."""
    parsed = Batch()
    first_of: dict[str, int] = {}
    for index, record in enumerate(records):
        try:
            event = parse_event(
                record,
                idempotency_key=idempotency_key,
                index=index if batch else None,
                now=now,
                key_scope=scope,
            )
        except InvalidEvent as exc:
            parsed.problems.append({"index": index, "error": str(exc.first)})
            continue
        if event.event_id in first_of:
            parsed.problems.append(
                {
                    "index": index,
                    "error": f"eventId {event.event_id!r} is also event "
                    f"{first_of[event.event_id]}'s; give each event its own id",
                }
            )
            continue
        first_of[event.event_id] = index
        parsed.events.append(event)
    return parsed


def client_scope(headers: Mapping[str, str], api_keys: frozenset[str]) -> str:
    """Whose request this is, for Idempotency-Keys and the event ids they make: a digest of
    the API key it came with, or "" on an open API (one client)."""
    if not api_keys:
        return ""
    given = next((v for k, v in headers.items() if k.lower() == "x-api-key"), "")
    return hashlib.sha256(given.encode()).hexdigest()[:16]


def canonical(records: list[Any]) -> str:
    """A body in one spelling, so a retry with other whitespace or key order still matches."""
    return json.dumps(records, sort_keys=True, separators=(",", ":"))


def accept(services: Services, events: list[Event]) -> dict[str, Any]:
    """Store the events; the answer counts what was new."""
    new = services.sink.put(events)
    stored = len(events) if new is None else new
    count("EventsAccepted", stored)
    result: dict[str, Any] = {"ok": True, "accepted": stored}
    if stored < len(events):
        # Their ids were stored before: by a retry, or by another event with the same id.
        result["duplicates"] = len(events) - stored
    return result


def accept_once(
    services: Services, events: list[Event], key: str, records: list[Any]
) -> dict[str, Any]:
    """`accept`, answered from the first response for a replayed key and body."""

    @idempotent_function(  # type: ignore[untyped-decorator]
        data_keyword_argument="request",
        persistence_store=services.idempotency,
        config=services.idempotency_config,
        # The records' key names this step, not the Python function that runs it (by
        # default, module and qualified name): a refactor must not orphan a day of keys.
        key_prefix=IDEMPOTENCY_PREFIX,
    )
    def accept_request(request: dict[str, Any]) -> dict[str, Any]:
        return accept(services, events)

    result: dict[str, Any] = accept_request(request={"key": key, "body": canonical(records)})
    return result


def idempotency_down(layer: BasePersistenceLayer, exc: Exception) -> str:
    """Why the Idempotency-Key records failed, naming their table where there is one."""
    table = getattr(layer, "table_name", None)
    where = f"The idempotency table {table}" if table else "The idempotency records"
    if "ResourceNotFoundException" in repr(exc) + repr(exc.__cause__):
        return (
            f"{where} does not exist: create it (infra/terraform declares it) or point "
            "RECS_IDEMPOTENCY_STORE at it, then retry with the same Idempotency-Key"
        )
    # The events' ids come from the key, so a retry never stores an event twice.
    return f"{where} is unavailable; retry with the same Idempotency-Key"


def store(
    services: Services, events: list[Event], records: list[Any], key: str | None
) -> Response[str]:
    """202 once the events are durable; 409 or 503 with what to do otherwise."""
    try:
        result = accept(services, events) if key is None else accept_once(
            services, events, key, records
        )  # fmt: skip
    except IdempotencyValidationError:
        return error(
            409,
            "This Idempotency-Key was used with a different body; use a new key for a new request",
        )
    except IdempotencyAlreadyInProgressError:
        return error(409, "A request with this Idempotency-Key is still running; retry")
    except DeliveryFailed:
        logger.exception("event sink refused a batch")
        return error(503, "The event sink is unavailable; retry with the same Idempotency-Key")
    except IdempotencyPersistenceLayerError as exc:
        logger.exception("idempotency records failed")
        return error(503, idempotency_down(services.idempotency, exc))
    return Response(status_code=202, content_type="application/json", body=dumps(result))


def router() -> Router:
    """The events route, under /v1 and (hidden from the spec) unversioned."""
    routes = Router()  # type: ignore[no-untyped-call]

    @routes.post(
        "/v1/events",
        summary="Record shopper events",
        description=f"One event, or a list of 1 to {MAX_BATCH}. All are accepted or none: "
        "a 400 names the first problem of each refused event. With an Idempotency-Key, a "
        "retry answers the same and stores nothing twice.",
        status_code=202,
        responses={
            202: doc("Accepted: the events are durable", Accepted),
            409: doc(
                "The Idempotency-Key is in use: by a request still running, or by one with "
                "a different body",
                ErrorBody,
            ),
            405: doc("Method not allowed; the Allow header names the right one", ErrorBody),
            413: doc(f"Body larger than {MAX_BODY_BYTES} bytes", ErrorBody),
            415: doc("Body is not application/json", ErrorBody),
            **ERRORS,
        },
        tags=["events"],
    )
    @routes.post("/events", include_in_schema=False, status_code=202)
    def post_events(body: EventsBody, idempotency_key: IdempotencyKeyHeader = None) -> Any:
        services = services_of(routes)
        batch = isinstance(body, list)
        records = body if isinstance(body, list) else [body]
        if not 1 <= len(records) <= MAX_BATCH:
            return error(400, f"Send 1 to {MAX_BATCH} events at a time (got {len(records)})")
        scope = client_scope(routes.current_event.headers, services.api_keys)
        parsed = parse_batch(
            records,
            batch=batch,
            idempotency_key=idempotency_key,
            now=datetime.now(UTC),
            scope=scope,
        )
        if parsed.problems:
            count("EventsRefused", len(parsed.problems))
            first = parsed.problems[0]
            if not batch:
                return error(400, first["error"])
            return error(400, f"Event {first['index']}: {first['error']}", problems=parsed.problems)
        # Scoped by client: one API key's Idempotency-Keys never answer another's.
        key = None if idempotency_key is None else f"{scope}/{idempotency_key}"
        return store(services, parsed.events, records, key)

    return routes
