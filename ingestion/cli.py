"""Command line of the ingestion stage: `recs generate`, `recs import`, `recs ingest`, ...

Each command is a thin shell: it reads settings once, calls one function of the package and
prints what happened. `python -m ingestion` runs the same commands.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ingestion.contract import Event, json_schemas, parse_event
from ingestion.errors import IngestionError, InvalidEvent
from ingestion.lake import open_lake
from ingestion.settings import SINK_KINDS, IngestionSettings
from ingestion.sinks import LocalSink, make_sink

P = ParamSpec("P")
R = TypeVar("R")
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


class CommandFailed(click.ClickException):
    """A command could not do its job; exit status 2, as for a usage error."""

    exit_code = 2


def fails_cleanly(command: Callable[P, R]) -> Callable[P, R]:
    """Turn our errors into a one-line message and exit status 2, with no traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (IngestionError, ValueError) as exc:
            raise CommandFailed(str(exc)) from exc

    return wrapper


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields a function that advances it."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


lake_option = click.option(
    "--lake", help="Lake root: a folder or s3://bucket/prefix. [env RECS_LAKE; default ./lake]"
)
sink_option = click.option(
    "--sink",
    type=click.Choice(SINK_KINDS),
    help="Where events go. [env RECS_SINK; default local]",
)


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-11-01") from None


@click.command()
@click.option("--users", default=5_000, show_default=True, help="Number of shoppers.")
@click.option("--items", default=2_000, show_default=True, help="Number of products.")
@click.option("--categories", default=20, show_default=True, help="Number of categories.")
@click.option("--days", default=90, show_default=True, help="Length of the history in days.")
@click.option("--events", default=500_000, show_default=True, help="Exact number of events.")
@click.option("--seed", default=42, show_default=True, help="Same seed, same shop.")
@click.option(
    "--end",
    callback=_date,
    help="Last day of the history, YYYY-MM-DD (exclusive). [default: today]",
)
@click.option(
    "--live-days",
    default=0.0,
    show_default=True,
    help="Send the last N days of events through the sink (validated, like live traffic) "
    "instead of writing them straight to raw files.",
)
@lake_option
@sink_option
@fails_cleanly
def generate(
    users: int,
    items: int,
    categories: int,
    days: int,
    events: int,
    seed: int,
    end: datetime | None,
    live_days: float,
    lake: str | None,
    sink: str | None,
) -> None:
    """Generate a synthetic shop: catalog, users and their events, into the lake.

    History goes straight to the raw zone in Firehose's layout; with --live-days, the most
    recent events go through the configured sink instead, as live traffic would.

    \b
    Example: recs generate --users 2000 --items 1000 --events 200000 --days 60 --live-days 1
    """
    from ingestion.generator import (
        DAY_MS,
        ShopSpec,
        generate_shop,
        send_to_sink,
        write_catalog,
        write_raw,
    )

    settings = IngestionSettings.from_env(lake=lake, sink=sink)
    spec = ShopSpec(
        users=users,
        items=items,
        categories=categories,
        days=days,
        events=events,
        seed=seed,
        end=end,
    )
    started = time.perf_counter()
    console.print(f"Generating a shop of {events:,} events (seed {seed})...")
    shop = generate_shop(spec)
    target = open_lake(settings.lake)
    live_from = shop.end_ms - int(live_days * DAY_MS) if live_days > 0 else shop.end_ms
    n_backfill = int((shop.ts_ms < live_from).sum())
    with progress_bar("raw files", n_backfill) as advance:
        report = write_raw(shop, target, until_ms=live_from, progress=advance)
    prefix = write_catalog(shop, target)
    sent = 0
    if live_days > 0:
        event_sink = make_sink(settings)
        try:
            with progress_bar(f"{settings.sink} sink", shop.n_events - n_backfill) as advance:
                sent = send_to_sink(shop, event_sink, since_ms=live_from, progress=advance)
            event_sink.flush(force=True)
        finally:
            event_sink.close()
    elapsed = time.perf_counter() - started
    out.print(
        f"Wrote {report.events:,} events in {len(report.objects):,} raw objects "
        f"({report.bytes_written / 1e6:.1f} MB gzip) under {target.url('raw/events')}"
    )
    if live_days > 0:
        out.print(
            f"Sent {sent:,} events of the last {live_days:g} days through the {settings.sink} sink"
        )
    out.print(f"Catalog: {items:,} items and {users:,} users in {target.url(prefix)}")
    out.print(f"Done in {elapsed:.1f}s ({shop.n_events / elapsed:,.0f} events/s)")


def _parse_map(values: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for value in values:
        name, sep, target = value.partition("=")
        if not sep or not name or not target:
            raise click.BadParameter(f"{value!r} is not NAME=TYPE, e.g. click=view")
        mapping[name.strip().lower().replace("-", "_").replace(" ", "_")] = target.strip()
    return mapping


def _print_problems(source: str, problems: list[tuple[int, str]], total: int) -> None:
    for line, message in problems[:20]:
        console.print(f"  {source}:{line}: {message}", highlight=False, markup=False)
    if total > 20:
        console.print(f"  ... and {total - 20:,} more")


@click.command(name="import")
@click.argument("interactions", type=click.Path(path_type=Path), required=False)
@click.option("--items", type=click.Path(path_type=Path), help="Items CSV (Personalize format).")
@click.option("--users", type=click.Path(path_type=Path), help="Users CSV (Personalize format).")
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="NAME=TYPE",
    help="Map a shop's event type to view, add_to_cart or purchase. Repeatable.",
)
@click.option("--strict", is_flag=True, help="Exit with status 1 if any row was refused.")
@lake_option
@fails_cleanly
def import_(
    interactions: Path | None,
    items: Path | None,
    users: Path | None,
    mappings: tuple[str, ...],
    strict: bool,
    lake: str | None,
) -> None:
    """Import a shop's history from Amazon Personalize CSV files into the raw zone.

    Rows are validated one by one; bad rows are listed with their line numbers and kept in
    quarantine/import/, and the good rows still land.

    \b
    Example: recs import interactions.csv --items items.csv --map click=view
    """
    from ingestion.importer import ImportReport, import_catalog, import_interactions

    if interactions is None and items is None and users is None:
        raise click.UsageError("give an interactions CSV, --items, --users, or several")
    settings = IngestionSettings.from_env(lake=lake)
    target = open_lake(settings.lake)
    reports: list[ImportReport] = []
    if interactions is not None:
        with progress_bar("interactions", None) as advance:
            reports.append(
                import_interactions(
                    interactions, target, event_type_map=_parse_map(mappings), progress=advance
                )
            )
    if items is not None or users is not None:
        reports.extend(import_catalog(target, items=items, users=users))
    refused = 0
    for report in reports:
        out.print(
            f"{report.source}: {report.rows:,} rows, {report.accepted:,} imported, "
            f"{report.rejected:,} refused"
        )
        if report.rejected:
            _print_problems(report.source, report.problems, report.rejected)
            assert report.quarantine is not None
            console.print(f"  refused rows and reasons: {target.url(report.quarantine)}")
        refused += report.rejected
    if strict and refused:
        sys.exit(1)


def _read_events(sources: tuple[str, ...]) -> Iterator[tuple[str, int, str]]:
    for source in sources or ("-",):
        handle = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
        try:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield source, number, line
        finally:
            if handle is not sys.stdin:
                handle.close()


@click.command()
@click.argument("sources", nargs=-1, metavar="[FILE|-]...")
@click.option("--batch", default=500, show_default=True, help="Events per put.")
@click.option(
    "--flush/--no-flush",
    default=True,
    show_default=True,
    help="With the local sink, write everything waiting to the raw zone before exiting.",
)
@click.option("--strict", is_flag=True, help="Exit with status 1 if any event was refused.")
@lake_option
@sink_option
@fails_cleanly
def ingest(
    sources: tuple[str, ...],
    batch: int,
    flush: bool,
    strict: bool,
    lake: str | None,
    sink: str | None,
) -> None:
    """Validate events (JSON lines, from files or stdin) and put them on the sink.

    Each line is one event, as POST /v1/events takes it. Bad lines are reported with their
    line numbers; the good ones are delivered.

    \b
    Example: echo '{"userId":"U1","itemId":"I100","event_type":"view"}' | recs ingest -
    """
    settings = IngestionSettings.from_env(lake=lake, sink=sink)
    event_sink = make_sink(settings)
    accepted = refused = 0
    pending: list[Event] = []
    try:
        for source, number, line in _read_events(sources):
            try:
                pending.append(parse_event(line))
            except InvalidEvent as exc:
                refused += 1
                if refused <= 20:
                    console.print(f"  {source}:{number}: {exc}", highlight=False, markup=False)
                continue
            if len(pending) >= batch:
                event_sink.put(pending)
                accepted += len(pending)
                pending = []
        if pending:
            event_sink.put(pending)
            accepted += len(pending)
        if flush:
            event_sink.flush(force=True)
    finally:
        event_sink.close()
    out.print(f"{accepted:,} events accepted by the {settings.sink} sink, {refused:,} refused")
    if strict and refused:
        sys.exit(1)


@click.command(name="flush")
@click.option(
    "--force/--due",
    default=True,
    show_default=True,
    help="Write everything waiting, or only what the buffer hints say is due.",
)
@lake_option
@fails_cleanly
def flush_command(force: bool, lake: str | None) -> None:
    """Write events waiting in the local event log to the raw zone.

    Run it from cron, or let `recs serve` flush in the background.

    \b
    Example: recs flush --due
    """
    settings = IngestionSettings.from_env(lake=lake, sink="local")
    local = make_sink(settings)
    assert isinstance(local, LocalSink)
    try:
        report = local.flush(force=force)
    finally:
        local.close()
    out.print(
        f"Flushed {report.events:,} events into {len(report.objects)} objects"
        + (
            f" (finished {report.recovered:,} from an interrupted flush)"
            if report.recovered
            else ""
        )
    )
    for key in report.objects:
        out.print(f"  {local.lake.url(key)}")


@click.command()
@click.argument("name", type=click.Choice(["event", "item", "user"]), default="event")
def schema(name: str) -> None:
    """Print the JSON Schema of the event, item or user contract, for producers.

    \b
    Example: recs schema event > event.schema.json
    """
    out.print_json(json.dumps(json_schemas()[name]))


COMMANDS: list[click.Command] = [generate, import_, ingest, flush_command, schema]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """recs ingestion: generate, import and ingest shop events into the lake."""


for _command in COMMANDS:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of `python -m ingestion`."""
    return cli.main(args=argv, prog_name="python -m ingestion")
