"""Command line of the serving stage: `recs publish`."""

from __future__ import annotations

import os

import click

from ingestion.cli import CommandFailed, fails_cleanly, lake_option, out
from ingestion.lake import open_lake
from ingestion.settings import IngestionSettings
from serving.errors import ServingError
from serving.store import DEFAULT_STORE, open_store
from training.errors import TrainingError


@click.command("publish")
@click.argument("version", required=False)
@click.option("--force", is_flag=True, help="Publish even if the promotion gate said no.")
@click.option(
    "--store",
    "store_uri",
    help=f"Online store: a SQLite path or dynamodb://table. "
    f"[env RECS_STORE; default {DEFAULT_STORE}]",
)
@lake_option
@fails_cleanly
def publish_command(
    version: str | None, force: bool, store_uri: str | None, lake: str | None
) -> None:
    """Load a model version's recommendations into the online store and make it live.

    Without VERSION, the newest trained version. A version the promotion gate kept as a
    candidate is refused unless --force.

    \b
    Example: recs publish 20261124T230000Z
    """
    from serving.publish import publish

    settings = IngestionSettings.from_env(lake=lake)
    uri = store_uri or os.environ.get("RECS_STORE") or DEFAULT_STORE
    try:
        report = publish(open_lake(settings.lake), open_store(uri), version, force=force)
    except (TrainingError, ServingError) as exc:
        raise CommandFailed(str(exc)) from exc
    out.print(
        f"Published {report.version}{' (forced)' if report.forced else ''}: "
        f"{report.users:,} users and {report.items:,} items in {uri}"
    )
    if report.dropped:
        out.print(f"Dropped old versions: {', '.join(report.dropped)}")


COMMANDS: list[click.Command] = [publish_command]
