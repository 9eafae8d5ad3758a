"""`/health`: whether the API can answer, and the live model's version and freshness."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from common.contract import format_ts
from serving.errors import ModelUnavailable
from serving.recommend import LiveModel
from serving.services import count, dumps, services_of
from serving.shapes import API_VERSION, Health, doc
from serving.validation import LEAN


def with_failure(body: dict[str, Any], live: LiveModel) -> dict[str, Any]:
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


def with_experiment(body: dict[str, Any], candidate: LiveModel | None) -> dict[str, Any]:
    """A health answer with the running experiment, as this worker knows it."""
    if candidate is None:
        return body
    model = candidate.current()
    experiment = candidate.experiment
    if experiment is not None:
        body["experiment"] = {
            "id": experiment.id,
            "candidate": experiment.candidate,
            "share": experiment.share,
            "loaded": model is not None and model.version == experiment.candidate,
        }
        failure = candidate.failure
        if failure is not None:
            body["experiment"]["error"] = failure.error
    return body


def router() -> Router:
    """The health route, under /v1 and (hidden from the spec) unversioned."""
    routes = Router()  # type: ignore[no-untyped-call]

    @routes.get(
        "/v1/health",
        summary="Health",
        description="Whether the API can answer, its version, and the live model's version "
        "and how fresh its data is. 503 until a model is published.",
        responses={200: doc("Healthy", Health), 503: doc("No model published yet", Health)},
        tags=["operations"],
        **LEAN,
    )
    @routes.get("/health", include_in_schema=False, **LEAN)
    def health() -> Any:
        count("HealthChecks")
        live = services_of(routes).recommender.live
        try:
            model = live.get()
        except ModelUnavailable as exc:
            body = {"ok": False, "version": API_VERSION, "modelVersion": None, "error": str(exc)}
            return Response(503, "application/json", dumps(with_failure(body, live)))
        last_event = datetime.fromtimestamp(model.last_event_ms / 1000, UTC)
        body = {
            "ok": True,
            "version": API_VERSION,
            "modelVersion": model.version,
            "model": {
                "recipe": model.label,
                "repeats": model.blend.repeats,
                "trainedAt": model.created_at,
                "items": model.n_items,
                "dataThrough": format_ts(last_event),
                "dataAgeHours": round((datetime.now(UTC) - last_event).total_seconds() / 3600, 1),
            },
        }
        candidate = services_of(routes).recommender.candidate
        body = with_experiment(with_failure(body, live), candidate)
        return Response(200, "application/json", dumps(body))

    return routes
