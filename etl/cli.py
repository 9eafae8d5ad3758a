"""Command line of the ETL stage: `recs etl`, `recs export personalize`, `recs sql`."""

from __future__ import annotations

import json
import sys
from datetime import date

import click

from common.cli import CommandFailed, console, fails_cleanly, out, progress_bar, with_settings
from common.lake import lake_for_reading
from common.settings import LakeSettings
from etl.settings import EtlSettings


def _day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    from etl.job import parse_day

    if value is None:
        return None
    try:
        return parse_day(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("etl")
@click.option("--since", callback=_day, help="Backfill: re-read raw hours from this UTC date.")
@click.option("--until", callback=_day, help="Backfill: up to this UTC date (exclusive).")
@click.option("--no-glue", is_flag=True, help="On S3, do not register tables in Glue.")
@with_settings(EtlSettings)
@fails_cleanly
def etl_command(
    since: date | None, until: date | None, no_glue: bool, settings: EtlSettings
) -> None:
    """Curate the raw zone into Parquet: validate, dedupe, quarantine, commit.

    Reads only raw objects no earlier run read. With --since/--until it re-reads every raw
    hour in the window; events already curated are dropped as duplicates.

    \b
    Example: recs etl --since 2026-10-01 --until 2026-10-08
    """
    from etl.glue import catalog_for
    from etl.job import run_etl

    store = lake_for_reading(settings.lake)
    glue = None if no_glue else catalog_for(store, settings.glue_database)
    with progress_bar("Curating raw objects", None) as advance:
        report = run_etl(
            store,
            since=since,
            until=until,
            glue=glue,
            batch_bytes=settings.etl_batch_mb << 20,
            on_object=advance,
        )
    if report.abandoned_files:
        out.print(f"Removed {report.abandoned_files} temporary files that killed writes left")
    if report.finished_previous:
        out.print(f"Finished publishing {report.finished_previous} files of an interrupted run")
    if report.nothing_new:
        out.print(
            f"Nothing new in {store.uri}; the curated zone is unchanged (bookmark seq {report.seq})"
        )
        return
    rate = report.read / report.seconds if report.seconds else 0.0
    out.print(
        f"Run {report.run_id}: {report.raw_objects:,} raw objects, {report.read:,} events read, "
        f"{report.curated:,} curated, {report.quarantined:,} quarantined, "
        f"{report.duplicates:,} duplicates ({rate:,.0f} events/s)"
    )
    if report.unreadable_objects:
        out.print(f"[yellow]{report.unreadable_objects} raw objects could not be read at all")
    if report.damaged_objects:
        out.print(
            f"[yellow]{report.damaged_objects} raw objects were read only up to damage in them"
        )
    if report.unreadable_objects or report.damaged_objects:
        out.print("[yellow]  (each has a quarantine entry with line 0 saying what was wrong)")
    if report.catalog_dumps:
        tables = [
            f"{name} {count:,}"
            for name, count in (("items", report.items), ("users", report.users))
            if count is not None
        ]
        out.print(
            f"Catalog: {len(report.catalog_dumps)} dump(s), {', '.join(tables)}, "
            f"{report.catalog_quarantined:,} records quarantined"
        )
    dates = report.event_dates
    if len(dates) > 4:
        out.print(f"Dates written: {len(dates)}, from {dates[0]} to {dates[-1]}")
    else:
        out.print(f"Dates written: {', '.join(dates) or 'none'}")
    for key in report.quarantine_files:
        out.print(f"Quarantine: {store.url(key)}")
    if glue is not None:
        out.print(f"Glue database {settings.glue_database}: tables and partitions registered")


@click.group("export")
def export() -> None:
    """Export the curated zone for other systems."""


@export.command("personalize")
@click.option("--run", help="Name of the export folder. [default: the UTC time]")
@with_settings(EtlSettings)
@fails_cleanly
def export_personalize_command(run: str | None, settings: EtlSettings) -> None:
    """Write Amazon Personalize import CSVs and schemas under exports/personalize/<run>/.

    Fails with the rule and the numbers when the data is below Personalize's minimums.

    \b
    Example: recs export personalize --run nightly-2026-11-24
    """
    from etl.personalize import export_personalize

    store = lake_for_reading(settings.lake)
    report = export_personalize(
        store,
        run=run,
        part_bytes=int(settings.personalize_part_mb * 10**6),
        memory_mb=settings.export_memory_mb,
    )
    out.print(
        f"{report.interactions:,} interactions ({report.users_with_two:,} users with 2 or "
        f"more), {report.items:,} items, {report.users:,} users"
    )
    for key in report.files:
        out.print(f"  {store.url(key)}")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


@click.command("sql")
@click.option("-c", "--command", "query", help="Run one query, print the result and exit.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="How to print results.",
)
@with_settings(LakeSettings)
@fails_cleanly
def sql(query: str | None, fmt: str, settings: LakeSettings) -> None:
    """DuckDB over the curated lake, with views interactions, items and users.

    Without -c it reads statements from the terminal (end each with ;). docs/analysts.md
    has worked queries.

    \b
    Example: recs sql -c "SELECT event_type, count(*) FROM interactions GROUP BY 1"
    """
    import duckdb

    from etl.sql import connect

    con = connect(lake_for_reading(settings.lake))

    def run(statement: str) -> None:
        try:
            relation = con.sql(statement)
        except duckdb.Error as exc:
            raise CommandFailed(f"query failed: {exc}") from exc
        if relation is None:
            return
        if fmt == "table":
            out.print(relation.__str__(), highlight=False, markup=False)
        elif fmt == "csv":
            relation.df().to_csv(sys.stdout, index=False)
        else:
            for record in relation.df().to_dict(orient="records"):
                click.echo(json.dumps(record, default=str))

    if query is not None:
        run(query)
        return
    if sys.stdin.isatty():
        console.print("Views: interactions, items, users. End statements with ; and Ctrl-D quits.")
    buffer = ""
    for line in sys.stdin:
        buffer += line
        if buffer.rstrip().endswith(";"):
            try:
                run(buffer)
            except CommandFailed as exc:
                console.print(f"[red]{exc.message}")
            buffer = ""
    if buffer.strip():
        run(buffer)


COMMANDS: list[click.Command] = [etl_command, export, sql]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The ETL stage of recs: curate, export, query."""


for _command in COMMANDS:
    main.add_command(_command)
