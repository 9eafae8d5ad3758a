"""`recs serve`: the API over HTTP with uvicorn, through the ASGI adapter.

uvicorn calls `create_app` once per worker process, so each worker builds its own services
from the environment, with a background thread flushing the local sink to the raw zone.
"""

from __future__ import annotations

from serving.app import build_app, make_handler
from serving.asgi import LambdaASGI
from serving.handler import build_services
from serving.settings import ServingSettings


def create_app() -> LambdaASGI:
    """The ASGI app of one worker (uvicorn's `--factory`)."""
    services = build_services(ServingSettings.from_env(), background_flush=True)
    return LambdaASGI(make_handler(build_app(services), services), on_shutdown=services.sink.close)
