"""The recommendations API: one Powertools `APIGatewayHttpResolver` app.

It is the Lambda handler behind API Gateway's HTTP API (payload format 2.0), and `recs serve`
runs the very same handler over HTTP on loopback (`serving/asgi.py` turns each request into
a 2.0 event). The routes are Routers, one per resource, in `serving.routes`; they take the
`Services` from the resolver's context, which `make_handler` sets before each request. Every
error is JSON `{"error": "..."}`; bad input never gets a 5xx.

Before routing, `serving.precheck.refuse` answers what needs no route: a missing API key
(401), a body that is too large (413) or not JSON (415). Routing then validates the query
(400), and unknown paths get a 404 that says where the docs are. The shapes of requests and
answers are in `serving.shapes`, and the spec is built in `serving.spec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from common.contract import MAX_ID_LENGTH, loads_untrusted
from common.errors import InvalidEvent
from ingestion.errors import HistoryUnavailable
from serving.errors import ModelUnavailable, StoreError
from serving.precheck import internal_error, refuse
from serving.routes import events, health, ranking, recommendations
from serving.services import (
    CONTEXT_KEY,
    Services,
    count,
    dumps,
    error,
    logger,
    metrics,
    metrics_on,
    tracer,
)
from serving.shapes import (
    API_VERSION,
    DESCRIPTION,
    DOCS_PATH,
    MAX_K,
    SECURITY_SCHEMES,
)

#: Each route's method, by path without /v1, for a 405 that names it.
METHODS: Final = {
    "/recommendations/personalized": "GET",
    "/recommendations/related": "GET",
    "/recommendations/ranking": "POST",
    "/events": "POST",
    "/health": "GET",
    "/docs": "GET",
}


#: What a ranking request's body looks like, for the messages that refuse one.
_RANKING_BODY: Final = '{"userId": "U1", "itemIds": ["I1", "I2"]}'


def _validation_message(exc: RequestValidationError, path: str = "") -> str:
    """The first validation problem in the README's words."""
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ())]
    where, name = (loc[0], loc[1]) if len(loc) > 1 else (loc[0] if loc else "body", "")
    kind = first.get("type", "")
    if where == "body" and path.endswith("/recommendations/ranking"):
        if kind == "json_invalid":
            return f"Body is not valid JSON; send {_RANKING_BODY}"
        return f"Body must be a JSON object such as {_RANKING_BODY}"
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


def _json_body(body: str) -> Any:
    return loads_untrusted(body, "Body")


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
        cors=cors, enable_validation=True, json_body_deserializer=_json_body, serializer=dumps
    )

    @app.exception_handler(InvalidEvent)  # type: ignore[untyped-decorator]
    def _unreadable(exc: InvalidEvent) -> Response[str]:
        count("BadRequests")
        return error(400, str(exc.first))

    @app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]
    def _not_json(_exc: RequestUnsupportedContentType) -> Response[str]:
        return error(415, "Content-Type must be application/json; send the events as JSON")

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _invalid(exc: RequestValidationError) -> Response[str]:
        count("BadRequests")
        return error(400, _validation_message(exc, app.current_event.path))

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
        count("NotFound")
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

    for routes in (recommendations.router(), ranking.router(), events.router(), health.router()):
        app.include_router(routes)
    app.enable_swagger(
        path=DOCS_PATH,
        title="recs API",
        version=API_VERSION,
        description=DESCRIPTION,
        security_schemes=SECURITY_SCHEMES,
        security=[{}, {"apiKey": []}],
    )
    return app


Handler = Callable[[Mapping[str, Any], Any], dict[str, Any]]


def _method(event: Mapping[str, Any]) -> str:
    return str(((event.get("requestContext") or {}).get("http") or {}).get("method", "GET"))


def _as_get(event: Mapping[str, Any]) -> dict[str, Any]:
    context = dict(event.get("requestContext") or {})
    context["http"] = {**(context.get("http") or {}), "method": "GET"}
    return {**event, "requestContext": context}


def make_handler(app: APIGatewayHttpResolver, services: Services) -> Handler:
    """The Lambda handler: logging with a correlation id, EMF metrics, tracing, then routing.

    Metrics and tracing wrap each request only where they are on (on Lambda; metrics with
    `recs serve --metrics`): switched off, Powertools' wrappers still cost a quarter of a
    cached answer's time."""

    def _route(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        refused = refuse(event, services.api_keys, services.cors_origins)
        if refused is not None:
            return refused
        # Powertools frees an in-progress key once the request's time is up.
        services.idempotency_config.register_lambda_context(context)
        # The resolver clears its context after each request.
        app.append_context(**{CONTEXT_KEY: services})  # type: ignore[no-untyped-call]
        response: dict[str, Any] = app.resolve(event, context)
        return response

    route: Callable[[Mapping[str, Any], Any], dict[str, Any]] = _route
    if metrics_on():
        route = metrics.log_metrics(capture_cold_start_metric=True, raise_on_empty_metrics=False)(
            route
        )
    if not tracer.disabled:
        route = tracer.capture_lambda_handler(route)
    # The correlation id is the request's id, read directly: Powertools' correlation_id_path
    # compiles and runs a JMESPath query on every request for the same field.
    route = logger.inject_lambda_context(route)

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        count("Requests")
        logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
        head = _method(event) == "HEAD"
        if head:  # HEAD is GET without the body
            event = _as_get(event)
        response: dict[str, Any]
        try:
            response = route(event, context)
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
