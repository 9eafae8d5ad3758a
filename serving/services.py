"""What every route shares: the services it calls, the one error shape, and the API's
logger, metrics and tracer.

`serving.app` puts the `Services` into the resolver's context before each request, and each
router (`serving.routes`) takes them from there (Powertools' `append_context`), so a route is
a plain function of its request and the services, with no closure over a built app.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.shared.constants import METRICS_DISABLED_ENV, POWERTOOLS_DEV_ENV
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

from ingestion.sinks import EventSink
from serving.recommend import Recommender

SERVICE: Final = "recs-api"
#: How long a replayed Idempotency-Key answers with the first response.
IDEMPOTENCY_SECONDS: Final = 24 * 3600
#: The key the services travel under in the resolver's context.
CONTEXT_KEY: Final = "services"


def _log_json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


logger = Logger(service=SERVICE, json_serializer=_log_json)
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


def services_of(router: Router) -> Services:
    """The services of the request a router's route is answering."""
    services: Services = router.context[CONTEXT_KEY]
    return services


@functools.lru_cache(maxsize=8)
def _metrics_on(_dev: str | None, _disabled: str | None) -> bool:
    return not is_metrics_disabled()


def metrics_on() -> bool:
    """Powertools' `is_metrics_disabled`, negated, kept per value of the variables it reads:
    it parses them on every call, which twice per request cost a tenth of a cached answer."""
    return _metrics_on(os.environ.get(POWERTOOLS_DEV_ENV), os.environ.get(METRICS_DISABLED_ENV))


def count(name: str, value: float = 1) -> None:
    """Count `value` on the metric `name`, where metrics are on (the Lambda, or `recs serve
    --metrics`). Where they are off nothing is kept: Powertools would still print a metric's
    values to stdout each time it holds 100, disabled or not."""
    if metrics_on():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def dumps(value: Any) -> str:
    """An answer's JSON (orjson: a tenth of the standard library's time on an answer)."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def error(status: int, message: str, **extra: Any) -> Response[str]:
    """A JSON error response."""
    return Response(
        status_code=status,
        content_type="application/json",
        body=dumps({"error": message, **extra}),
    )
