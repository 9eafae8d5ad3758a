"""The recommendations API: one Powertools `APIGatewayHttpResolver` app.

It is the Lambda handler behind API Gateway's HTTP API (payload format 2.0), and `recs serve`
runs the very same handler over HTTP on loopback (`serving/asgi.py` turns each request into
a 2.0 event). Handlers are thin: they parse the request, call `Recommender` or the sink, and
shape the answer. Every error is JSON `{"error": "..."}`; bad input never gets a 5xx.

Before routing, `serving.precheck.refuse` answers what needs no route: a missing API key
(401), a body that is too large (413) or not JSON (415). Routing then validates the query
(400), and unknown paths get a 404 that says where the docs are. The shapes of requests and
answers are in `serving.shapes`, and the spec is built in `serving.spec`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

from common.contract import (
    MAX_ID_LENGTH,
    Event,
    check_id,
    format_ts,
    loads_untrusted,
    parse_event,
)
from common.errors import InvalidEvent
from ingestion.errors import DeliveryFailed, HistoryUnavailable
from ingestion.sinks import EventSink
from serving.errors import ModelUnavailable, StoreError
from serving.precheck import internal_error, refuse
from serving.recommend import Answer, LiveModel, Recommender
from serving.shapes import (
    API_VERSION,
    DEFAULT_K,
    DESCRIPTION,
    DOCS_PATH,
    ERRORS,
    MAX_BATCH,
    MAX_BODY_BYTES,
    MAX_K,
    SECURITY_SCHEMES,
    Accepted,
    ErrorBody,
    EventsBody,
    ExcludeParam,
    FilterParam,
    Health,
    IdempotencyKeyHeader,
    ItemIdParam,
    KParam,
    Personalized,
    Related,
    UserIdParam,
    doc,
)

SERVICE: Final = "recs-api"
#: How long a replayed Idempotency-Key answers with the first response.
IDEMPOTENCY_SECONDS: Final = 24 * 3600
#: Each route's method, by path without /v1, for a 405 that names it.
METHODS: Final = {
    "/recommendations/personalized": "GET",
    "/recommendations/related": "GET",
    "/events": "POST",
    "/health": "GET",
    "/docs": "GET",
}

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="recs", service=SERVICE)
tracer = Tracer(service=SERVICE)


@dataclass
class Services:
    """What the handlers call: built once per process from the settings."""

    recommender: Recommender
    sink: EventSink
    idempotency: BasePersistenceLayer
    api_keys: frozenset[str] = frozenset()
    cors_origins: tuple[str, ...] = ()
    idempotency_config: IdempotencyConfig = field(
        default_factory=lambda: IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="body",
            expires_after_seconds=IDEMPOTENCY_SECONDS,
        )
    )


def error(status: int, message: str, **extra: Any) -> Response[str]:
    """A JSON error response."""
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps({"error": message, **extra}),
    )


def _idempotency_down(layer: BasePersistenceLayer, exc: Exception) -> str:
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


def _validation_message(exc: RequestValidationError) -> str:
    """The first validation problem in the README's words."""
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ())]
    where, name = (loc[0], loc[1]) if len(loc) > 1 else (loc[0] if loc else "body", "")
    kind = first.get("type", "")
    if where == "body":
        if kind == "json_invalid":
            return "Body is not valid JSON; send one event object or a list of events"
        if kind == "missing":
            return "Missing body: send one event object or a list of 1 to 100 events as JSON"
        return "Body must be one event object or a list of 1 to 100 events"
    if kind == "missing":
        return f"Missing {name}"
    if name == "k":
        return f"k must be between 1 and {MAX_K}"
    if kind == "string_too_long":
        return f"{name} must be at most {MAX_ID_LENGTH} characters"
    if kind == "string_too_short":
        return f"{name} must not be empty"
    if kind == "string_pattern_mismatch":
        return f"{name} must be printable characters, not blank and with no control characters"
    return f"{name} is invalid ({kind})"


def _ids(raw: str | None) -> list[str]:
    """Item ids from a comma-separated parameter."""
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def _answer(key: str, value: str, list_name: str, answer: Answer) -> dict[str, Any]:
    metrics.add_metric(name=f"Source{answer.source.title()}", unit=MetricUnit.Count, value=1)
    return {
        key: value,
        list_name: [{"id": i, "score": s} for i, s in answer.items],
        "modelVersion": answer.model_version,
        "source": answer.source,
        "recommendationId": answer.recommendation_id or str(uuid.uuid4()),
    }


def build_app(services: Services) -> APIGatewayHttpResolver:
    """The resolver with every route, under /v1 and (hidden from the spec) unversioned."""
    cors = (
        CORSConfig(
            allow_origin=services.cors_origins[0],
            extra_origins=list(services.cors_origins[1:]),
            allow_headers=["Idempotency-Key", "X-Api-Key"],
            max_age=600,
        )
        if services.cors_origins
        else None
    )
    # Bodies are parsed by the contract's own loader, which refuses hostile JSON (a huge
    # number, deep nesting) as bad input instead of raising out of the resolver.
    app = APIGatewayHttpResolver(
        cors=cors, enable_validation=True, json_body_deserializer=_json_body
    )
    recommender = services.recommender

    @app.exception_handler(InvalidEvent)  # type: ignore[untyped-decorator]
    def _unreadable(exc: InvalidEvent) -> Response[str]:
        metrics.add_metric(name="BadRequests", unit=MetricUnit.Count, value=1)
        return error(400, str(exc.first))

    @app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]
    def _not_json(_exc: RequestUnsupportedContentType) -> Response[str]:
        return error(415, "Content-Type must be application/json; send the events as JSON")

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _invalid(exc: RequestValidationError) -> Response[str]:
        metrics.add_metric(name="BadRequests", unit=MetricUnit.Count, value=1)
        return error(400, _validation_message(exc))

    @app.exception_handler(ModelUnavailable)  # type: ignore[untyped-decorator]
    def _no_model(exc: ModelUnavailable) -> Response[str]:
        return error(503, str(exc))

    @app.exception_handler(HistoryUnavailable)  # type: ignore[untyped-decorator]
    def _history_down(exc: HistoryUnavailable) -> Response[str]:
        logger.exception("recent history failed")
        return error(503, str(exc))

    @app.exception_handler(StoreError)  # type: ignore[untyped-decorator]
    def _store_down(exc: StoreError) -> Response[str]:
        logger.exception("online store failed")
        return error(503, "The online store is unavailable; retry shortly")

    @app.not_found
    def _not_found(_exc: Exception) -> Response[str]:
        metrics.add_metric(name="NotFound", unit=MetricUnit.Count, value=1)
        event = app.current_event
        allowed = METHODS.get(event.path.removeprefix("/v1"))
        if allowed:
            response = error(
                405, f"{event.http_method} is not allowed on {event.path}; use {allowed}"
            )
            response.headers["Allow"] = allowed
            return response
        return error(
            404,
            f"No route {event.http_method} {event.path}; the API's routes are listed at "
            f"{DOCS_PATH}",
        )

    @app.get(
        "/v1/recommendations/personalized",
        summary="Recommended for you",
        description="The user's top k items: the published batch (source batch) until the "
        "user has events newer than the live model's data, then scored at request time over "
        "their whole history with the new events folded in (realtime); a user the model "
        "cannot score gets trending items (popular). The model's repeat policy decides "
        "whether the user's own items come back. Never 404 for an unknown user.",
        responses={200: doc("Recommendations", Personalized), **ERRORS},
        tags=["recommendations"],
    )
    @app.get("/recommendations/personalized", include_in_schema=False)
    def personalized(
        user_id: UserIdParam,
        k: KParam = DEFAULT_K,
        exclude: ExcludeParam = None,
        filter_: FilterParam = None,
    ) -> Any:
        category, not_purchased, not_seen = None, filter_ == "not-purchased", filter_ == "not-seen"
        if filter_ is not None and filter_.startswith("category:"):
            category = filter_.removeprefix("category:")
            if not category:
                return error(400, "filter category:<name> needs a category name")
            try:
                check_id(category)
            except ValueError:
                return error(
                    400,
                    "filter category:<name> needs a name of printable characters, with no "
                    f"control characters (got {category!r})",
                )
        elif filter_ is not None and not (not_purchased or not_seen):
            return error(
                400,
                f"filter must be not-purchased, not-seen or category:<name> (got {filter_!r})",
            )
        refused = _bad_ids("userId", [user_id]) or _bad_ids("exclude", _ids(exclude))
        if refused is not None:
            return refused
        answer = recommender.personalized(
            user_id,
            k,
            exclude=_ids(exclude),
            category=category,
            not_purchased=not_purchased,
            not_seen=not_seen,
        )
        return _answer("userId", user_id, "items", answer)

    @app.get(
        "/v1/recommendations/related",
        summary="Related items",
        description="Items shoppers interact with alongside this one, strongest first. An "
        "unknown item gets trending items (source popular), never a 404.",
        responses={200: doc("Related items", Related), **ERRORS},
        tags=["recommendations"],
    )
    @app.get("/recommendations/related", include_in_schema=False)
    def related(item_id: ItemIdParam, k: KParam = DEFAULT_K, exclude: ExcludeParam = None) -> Any:
        refused = _bad_ids("itemId", [item_id]) or _bad_ids("exclude", _ids(exclude))
        if refused is not None:
            return refused
        answer = recommender.related(item_id, k, exclude=_ids(exclude))
        return _answer("itemId", item_id, "related", answer)

    @idempotent_function(  # type: ignore[untyped-decorator]
        data_keyword_argument="request",
        persistence_store=services.idempotency,
        config=services.idempotency_config,
    )
    def accept_once(request: dict[str, Any], events: list[Event]) -> dict[str, Any]:
        return accept(events)

    def accept(events: list[Event]) -> dict[str, Any]:
        new = services.sink.put(events)
        stored = len(events) if new is None else new
        metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=stored)
        result: dict[str, Any] = {"ok": True, "accepted": stored}
        if stored < len(events):
            # Their ids were stored before: by a retry, or by another event with the same id.
            result["duplicates"] = len(events) - stored
        return result

    @app.post(
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
    @app.post("/events", include_in_schema=False, status_code=202)
    def post_events(
        body: EventsBody,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Any:
        batch = isinstance(body, list)
        records = body if isinstance(body, list) else [body]
        if not 1 <= len(records) <= MAX_BATCH:
            return error(400, f"Send 1 to {MAX_BATCH} events at a time (got {len(records)})")
        now = datetime.now(UTC)
        scope = _client_scope(app.current_event.headers, services.api_keys)
        events: list[Event] = []
        problems: list[dict[str, Any]] = []
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
                problems.append({"index": index, "error": str(exc.first)})
                continue
            if event.event_id in first_of:
                problems.append(
                    {
                        "index": index,
                        "error": f"eventId {event.event_id!r} is also event "
                        f"{first_of[event.event_id]}'s; give each event its own id",
                    }
                )
                continue
            first_of[event.event_id] = index
            events.append(event)
        if problems:
            metrics.add_metric(name="EventsRefused", unit=MetricUnit.Count, value=len(problems))
            if not batch:
                return error(400, problems[0]["error"])
            first = problems[0]
            return error(400, f"Event {first['index']}: {first['error']}", problems=problems)
        try:
            if idempotency_key is None:
                result = accept(events)
            else:
                # Scoped by client: one API key's Idempotency-Keys never answer another's.
                request = {"key": f"{scope}/{idempotency_key}", "body": _canonical(records)}
                result = accept_once(request=request, events=events)
        except IdempotencyValidationError:
            return error(
                409,
                "This Idempotency-Key was used with a different body; use a new key for a "
                "new request",
            )
        except IdempotencyAlreadyInProgressError:
            return error(409, "A request with this Idempotency-Key is still running; retry")
        except DeliveryFailed:
            logger.exception("event sink refused a batch")
            return error(503, "The event sink is unavailable; retry with the same Idempotency-Key")
        except IdempotencyPersistenceLayerError as exc:
            logger.exception("idempotency records failed")
            return error(503, _idempotency_down(services.idempotency, exc))
        return Response(status_code=202, content_type="application/json", body=json.dumps(result))

    @app.get(
        "/v1/health",
        summary="Health",
        description="Whether the API can answer, its version, and the live model's version "
        "and how fresh its data is. 503 until a model is published.",
        responses={200: doc("Healthy", Health), 503: doc("No model published yet", Health)},
        tags=["operations"],
    )
    @app.get("/health", include_in_schema=False)
    def health() -> Any:
        metrics.add_metric(name="HealthChecks", unit=MetricUnit.Count, value=1)
        live = recommender.live
        try:
            model = live.get()
        except ModelUnavailable as exc:
            body = {"ok": False, "version": API_VERSION, "modelVersion": None, "error": str(exc)}
            return Response(503, "application/json", json.dumps(_with_failure(body, live)))
        last_event = datetime.fromtimestamp(model.last_event_ms / 1000, UTC)
        body = {
            "ok": True,
            "version": API_VERSION,
            "modelVersion": model.version,
            "model": {
                "recipe": model.label,
                "repeats": model.blend.exclude,
                "trainedAt": model.created_at,
                "items": model.n_items,
                "dataThrough": format_ts(last_event),
                "dataAgeHours": round((datetime.now(UTC) - last_event).total_seconds() / 3600, 1),
            },
        }
        return Response(200, "application/json", json.dumps(_with_failure(body, live)))

    app.enable_swagger(
        path=DOCS_PATH,
        title="recs API",
        version=API_VERSION,
        description=DESCRIPTION,
        security_schemes=SECURITY_SCHEMES,
        security=[{}, {"apiKey": []}],
    )
    return app


def _with_failure(body: dict[str, Any], live: LiveModel) -> dict[str, Any]:
    """A health answer with the published version this worker cannot load, if there is one:
    it still answers with the version it has (or 503s, if it has none)."""
    failure = live.failure
    if failure is not None:
        body["failure"] = {
            "publishedVersion": failure.version,
            "error": failure.error,
            "attempts": failure.attempts,
            "since": format_ts(datetime.fromtimestamp(failure.since, UTC)),
        }
    return body


def _json_body(body: str) -> Any:
    return loads_untrusted(body, "Body")


def _bad_ids(name: str, values: list[str]) -> Response[str] | None:
    """A 400 for the first id that breaks the event contract's id rule, else None."""
    for value in values:
        try:
            check_id(value)
        except ValueError:
            return error(
                400,
                f"{name} must be 1 to {MAX_ID_LENGTH} printable characters, not blank and "
                f"with no control characters (got {value!r})",
            )
    return None


def _client_scope(headers: Mapping[str, str], api_keys: frozenset[str]) -> str:
    """Whose request this is, for Idempotency-Keys and the event ids they make: a digest of
    the API key it came with, or "" on an open API (one client)."""
    if not api_keys:
        return ""
    given = next((v for k, v in headers.items() if k.lower() == "x-api-key"), "")
    return hashlib.sha256(given.encode()).hexdigest()[:16]


def _canonical(records: list[Any]) -> str:
    """A body in one spelling, so a retry with other whitespace or key order still matches."""
    return json.dumps(records, sort_keys=True, separators=(",", ":"))


Handler = Callable[[Mapping[str, Any], Any], dict[str, Any]]


def _method(event: Mapping[str, Any]) -> str:
    return str(((event.get("requestContext") or {}).get("http") or {}).get("method", "GET"))


def _as_get(event: Mapping[str, Any]) -> dict[str, Any]:
    context = dict(event.get("requestContext") or {})
    context["http"] = {**(context.get("http") or {}), "method": "GET"}
    return {**event, "requestContext": context}


def make_handler(app: APIGatewayHttpResolver, services: Services) -> Handler:
    """The Lambda handler: logging with a correlation id, EMF metrics, tracing, then routing."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    @tracer.capture_lambda_handler
    # Powertools prints the cold-start metric even when metrics are disabled: ask for it
    # only when they are not.
    @metrics.log_metrics(
        capture_cold_start_metric=not is_metrics_disabled(), raise_on_empty_metrics=False
    )
    def _route(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        refused = refuse(event, services.api_keys, services.cors_origins)
        if refused is not None:
            return refused
        # Powertools frees an in-progress key once the request's time is up.
        services.idempotency_config.register_lambda_context(context)
        response: dict[str, Any] = app.resolve(event, context)
        return response

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        head = _method(event) == "HEAD"
        if head:  # HEAD is GET without the body
            event = _as_get(event)
        response: dict[str, Any]
        try:
            response = _route(event, context)
        except Exception:
            # The edge: what no route handled is logged, and answered in the one error shape
            # (API Gateway's own 500 would be {"message": ...}).
            logger.exception("unhandled error")
            response = internal_error()
        if head:
            response = {**response, "body": "", "isBase64Encoded": False}
        logger.info(
            "request",
            extra={
                "method": (event.get("requestContext") or {}).get("http", {}).get("method"),
                "path": event.get("rawPath"),
                "status": response.get("statusCode"),
            },
        )
        return response

    return handler
