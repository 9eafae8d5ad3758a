"""`recs serve`: the API over HTTP with uvicorn, through the ASGI adapter.

uvicorn calls `create_app` once per worker process, so each worker builds its own services
from the environment, with a background thread flushing the local sink to the raw zone. The
limits one client meets are in `serving.limits`.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path
from typing import Final

from serving.app import SERVICE, build_app, make_handler
from serving.app import logger as request_logger
from serving.asgi import JsonErrors, LambdaASGI
from serving.handler import build_services
from serving.limits import LOG_FILE_VARIABLE
from serving.settings import ServingSettings

LOG_BYTES: Final = 10 * 1024 * 1024
LOG_BACKUPS: Final = 5


def log_to_file(path: Path) -> None:
    """Send this worker's request log and uvicorn's own to one rotating file (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600))
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(request_logger.registered_formatter)
    for name in (SERVICE, "uvicorn", "uvicorn.error", "uvicorn.access"):
        target = logging.getLogger(name)
        target.handlers = [handler]
        target.propagate = False


def create_app() -> JsonErrors:
    """The ASGI app of one worker (uvicorn's `--factory`)."""
    log_file = os.environ.get(LOG_FILE_VARIABLE)
    services = build_services(ServingSettings.from_env(), background_flush=True)
    app = LambdaASGI(make_handler(build_app(services), services), on_shutdown=services.sink.close)
    if log_file:
        log_to_file(Path(log_file))
    return JsonErrors(app)
