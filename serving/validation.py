"""Request validation for the GET routes, compiled once per route instead of per request.

Powertools' OpenAPI validation middleware re-derives, on every request, what each parameter
is (`is_scalar_field` over the annotation), normalizes headers and cookies the route never
reads, and walks the answer with `jsonable_encoder`: on a cached answer it cost more than
the answer itself. The recommendation and health routes take only query parameters, so
`query_validation` reads what each route's signature declares once (the same annotations
the spec is generated from, `serving.shapes`), then validates each request's query with
the fields' own pydantic validators, the ones Powertools runs, and raises the same
`RequestValidationError`. `tests/serving/test_validation.py` checks the two agree on every
query it generates. The events route keeps Powertools' middleware: its body is parsed by
the contract, and the durable write dominates its time.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Route
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    _request_params_to_args,
)
from aws_lambda_powertools.event_handler.openapi.compat import (
    ModelField,
    _normalize_errors,
    is_scalar_field,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

Next = Callable[[Any], Response[Any]]
#: Each route's query fields, read from its signature at its first request.
_PLANS: Final[weakref.WeakKeyDictionary[Route, tuple[ModelField, ...]]] = (
    weakref.WeakKeyDictionary()
)


def _plan(route: Route) -> tuple[ModelField, ...]:
    """The route's query fields, checked once: a route that takes anything else is a bug."""
    plan = _PLANS.get(route)
    if plan is None:
        dependant = route.dependant
        others = (
            dependant.path_params,
            dependant.header_params,
            dependant.cookie_params,
            dependant.body_params,
        )
        if any(others):
            raise TypeError(
                f"{route.func.__name__} takes more than query parameters: validate it with "
                "Powertools' middleware (enable_validation)"
            )
        if not all(is_scalar_field(field) for field in dependant.query_params):
            raise TypeError(f"{route.func.__name__} takes a query parameter that is not scalar")
        plan = _PLANS[route] = tuple(dependant.query_params)
    return plan


def _query(event: Any, fields: Sequence[ModelField]) -> dict[str, Any]:
    """The fields' raw values. API Gateway joins a repeated parameter's values with commas;
    as in Powertools, such a parameter arrives as the list of its parts (which a scalar
    field refuses), while one sent once keeps its commas."""
    raw: dict[str, str] = event.get("queryStringParameters") or {}
    query: dict[str, Any] = {}
    repeated: set[str] | None = None
    for field in fields:
        value = raw.get(field.alias)
        if value is None:
            continue
        if "," in value:
            if repeated is None:
                counted = parse_qs(event.get("rawQueryString") or "", keep_blank_values=True)
                repeated = {name for name, values in counted.items() if len(values) > 1}
            if field.alias in repeated:
                query[field.alias] = value.split(",")
                continue
        query[field.alias] = value
    return query


def query_validation(app: Any, next_middleware: Next) -> Response[Any]:
    """A route middleware: validate the query as the route's signature declares, then call
    the route with the values (Powertools' `_route_args`)."""
    route: Route = app.context["_route"]
    fields = _plan(route)
    values, errors = _request_params_to_args(fields, _query(app.current_event.raw_event, fields))
    if errors:
        raise RequestValidationError(_normalize_errors(errors))
    app.append_context(_route_args=values)
    return next_middleware(app)


#: What a GET route passes to its decorator: no Powertools validation, ours instead.
LEAN: Final[dict[str, Any]] = {"enable_validation": False, "middlewares": [query_validation]}
