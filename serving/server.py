"""`recs serve`: the API over HTTP with uvicorn, through the ASGI adapter.

uvicorn calls `create_app` once per worker process, so each worker builds its own services
from the environment, with a background thread flushing the local sink to the raw zone. The
limits one client meets are in `serving.limits`.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
import threading
from pathlib import Path
from typing import Any, Final

from serving.app import build_app, make_handler
from serving.asgi import JsonErrors, LambdaASGI
from serving.errors import ModelUnavailable
from serving.handler import build_services
from serving.services import SERVICE, Services
from serving.services import logger as request_logger
from serving.settings import ServingSettings
from serving.threads import one_thread_per_worker

LOG_BYTES: Final = 10 * 1024 * 1024
LOG_BACKUPS: Final = 5


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose every file, the ones rotation starts too, is its owner's alone
    (the stock handler creates them with the process's umask, usually 0644)."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        os.fchmod(fd, 0o600)  # a file an older release made with other permissions
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def configure_logging(path: Path | None) -> None:
    """One JSON log for everything this worker says: the request log, uvicorn's, and every
    package's logger (the background flusher's among them), to a rotating file (mode 0600)
    or to standard output. Errors of a thread nobody joins are logged there too, not
    printed to stderr."""
    handler: logging.Handler
    if path is None:
        handler = logging.StreamHandler(sys.stdout)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = PrivateRotatingFileHandler(
            path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    handler.setFormatter(request_logger.registered_formatter)
    for name in (SERVICE, "uvicorn", "uvicorn.error", "uvicorn.access"):
        target = logging.getLogger(name)
        target.handlers = [handler]
        target.propagate = False
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_error


def _log_thread_error(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread else "a thread"
    logging.getLogger(__name__).critical(
        "%s stopped on an error nobody caught",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
    )


def ready(services: Services) -> None:
    """Load the published version before the worker takes requests, so that `/v1/health`
    answering means ready: the first request no longer waits seconds for the load. With none
    published (or one that cannot load) the worker starts anyway, and says so in health."""
    with contextlib.suppress(ModelUnavailable):
        services.recommender.live.get()


def create_app() -> JsonErrors:
    """The ASGI app of one worker (uvicorn's `--factory`)."""
    one_thread_per_worker()
    settings = ServingSettings.from_env()
    configure_logging(settings.log_file)
    services = build_services(settings, background_flush=True)
    ready(services)
    app = LambdaASGI(
        make_handler(build_app(services), services),
        on_shutdown=services.sink.close,
        cors_origins=services.cors_origins,
    )
    return JsonErrors(app)
