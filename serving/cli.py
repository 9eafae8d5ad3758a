"""Command line of the serving stage: `recs publish`."""

from __future__ import annotations

import functools
import os
from typing import Final

import click

from common.cli import FLAGS_KEY, deprecated, fails_cleanly, out, say, with_settings
from common.lake import lake_for_reading
from common.settings import variable
from serving.limits import GuardedHttpToolsProtocol, ServerLimits
from serving.settings import ServingSettings, StoreSettings


@click.command("publish")
@click.argument("version", required=False)
@click.option(
    "--force",
    is_flag=True,
    help="Deprecated: `recs models promote VERSION --force` publishes a candidate.",
)
@click.option(
    "--if-approved",
    is_flag=True,
    help="A candidate the gate kept is reported and left alone, with exit status 0.",
)
@with_settings(StoreSettings)
@fails_cleanly
def publish_command(
    version: str | None, force: bool, if_approved: bool, settings: StoreSettings
) -> None:
    """Load a model version's recommendations into the online store and make it live.

    Without VERSION, the newest trained version. A version the promotion gate kept as a
    candidate is refused (`recs models promote VERSION --force` publishes it anyway); with
    --if-approved that is a normal outcome (what `make train` does after a night whose model
    did not beat production).

    \b
    Example: recs publish 20261124T230000Z
    """
    from serving.publish import kept_reasons, latest_version, publish

    if force:
        deprecated("recs publish --force", "recs models promote VERSION --force")
    lake = lake_for_reading(settings.lake)
    if if_approved and not force:
        version = version or latest_version(lake)
        reasons = kept_reasons(lake, version)
        if reasons is not None:
            out.print(
                f"Version {version} was kept as a candidate, not published: {reasons}. "
                "Production is unchanged.",
                highlight=False,
            )
            return
    report = publish(lake, settings.publishing_store(lake), version, force=force, progress=say)
    out.print(
        f"Published {report.version}{' (forced)' if report.forced else ''}: "
        f"{report.users:,} users and {report.items:,} items in {settings.store}"
    )
    if report.dropped:
        out.print(f"Dropped old versions: {', '.join(report.dropped)}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=lambda: len(os.sched_getaffinity(0)),
    show_default="the cores this process may use",
    type=click.IntRange(1, 64),
    help="Worker processes; each answers one request at a time on one BLAS thread, like a "
    "Lambda instance.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Level of the JSON request log (Powertools Logger).",
)
@click.option(
    "--metrics/--no-metrics",
    default=False,
    show_default=True,
    help="Print CloudWatch EMF metrics per request to stdout, as the Lambda does.",
)
@click.option(
    "--request-timeout",
    default=ServerLimits.request_timeout_s,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds a client has to send a whole request; a connection that sends nothing in "
    "that time is closed.",
)
@click.option(
    "--keep-alive",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seconds an idle keep-alive connection stays open.",
)
@click.option(
    "--max-connections",
    default=ServerLimits.max_connections,
    show_default=True,
    type=click.IntRange(min=1),
    help="Open connections per worker; past it, a small reserve answers only /v1/health and "
    "the rest are answered 503.",
)
@click.option(
    "--max-connections-per-client",
    default=ServerLimits.max_connections_per_client,
    show_default=True,
    type=click.IntRange(min=1),
    help="Open connections from one client address, per worker, treated as --max-connections "
    "is. Behind a reverse proxy, every client has the proxy's address: raise it there.",
)
@click.option(
    "--health-reserve",
    default=ServerLimits.health_reserve,
    show_default=True,
    type=click.IntRange(min=0),
    help="Connections past either cap that may still ask for /v1/health; one more is "
    "answered 503 and closed.",
)
@click.option(
    "--max-header-bytes",
    default=ServerLimits.max_head_bytes,
    show_default=True,
    type=click.IntRange(min=1024),
    help="Bytes of a request's line and headers; more is answered 431.",
)
@click.option(
    "--no-ui",
    is_flag=True,
    help="Serve the API alone, without the demo storefront at / and the ops page at /ops.",
)
@with_settings(ServingSettings)
@fails_cleanly
def serve_command(
    host: str,
    port: int,
    workers: int,
    log_level: str,
    metrics: bool,
    request_timeout: float,
    keep_alive: int,
    max_connections: int,
    max_connections_per_client: int,
    health_reserve: int,
    max_header_bytes: int,
    no_ui: bool,
    settings: ServingSettings,
) -> None:
    """Serve the recommendations API over HTTP (the same app the Lambda runs).

    Every setting is a flag, a RECS_* variable or a key of recs.toml (README.md,
    "Settings"). The docs are at /v1/docs.

    \b
    Example: recs serve --port 8000
             curl 'http://127.0.0.1:8000/v1/recommendations/personalized?userId=U1&k=3'
    """
    import uvicorn

    lake_for_reading(settings.lake)
    # The workers read their settings again, from the environment this entry point owns:
    # the flags given here go there.
    for name, value in click.get_current_context().meta.get(FLAGS_KEY, {}).items():
        os.environ[variable(name, ServingSettings.model_fields[name])] = str(value)
    os.environ["POWERTOOLS_LOG_LEVEL"] = log_level.upper()
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false" if metrics else "true"
    if settings.log_file is not None:
        # Workers start in this folder, but say the file the way it is opened.
        log_file = variable("log_file", ServingSettings.model_fields["log_file"])
        os.environ[log_file] = str(settings.log_file.resolve())
    limits = ServerLimits(
        request_timeout_s=request_timeout,
        max_head_bytes=max_header_bytes,
        max_url_bytes=min(ServerLimits.max_url_bytes, max_header_bytes),
        max_connections=max_connections,
        max_connections_per_client=min(max_connections, max_connections_per_client),
        health_reserve=health_reserve,
    )
    pages = UI_FACTORY is not None and not no_ui
    base = f"http://{host}:{port}"
    shown = f"; store: {base}/, ops: {base}/ops" if pages else ""
    out.print(f"Serving on {base} (docs: {base}/v1/docs{shown})")
    uvicorn.run(
        UI_FACTORY if pages and UI_FACTORY else API_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
        loop="uvloop",
        http=functools.partial(GuardedHttpToolsProtocol, limits=limits),  # type: ignore[arg-type]
        timeout_keep_alive=keep_alive,
    )


@click.command("openapi")
@click.option(
    "--out",
    "target",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the spec to this file instead of standard output.",
)
@fails_cleanly
def openapi_command(target: str | None) -> None:
    """Print the API's OpenAPI 3 spec (YAML), generated from the app.

    \b
    Example: recs openapi --out serving/openapi.yaml
    """
    from serving.spec import openapi_yaml

    text = openapi_yaml()
    if target:
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        click.echo(text, nl=False)


#: The app uvicorn builds in each worker. The pages come from the layer above serving: the
#: `recs` command (orchestration) names their factory here, so serving imports nothing of it.
API_FACTORY: Final = "serving.server:create_app"
UI_FACTORY: str | None = None

COMMANDS: list[click.Command] = [publish_command, serve_command, openapi_command]
