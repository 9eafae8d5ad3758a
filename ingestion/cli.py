"""Command line of the ingestion stage: `recs generate`, `recs import`, `recs ingest`, ...

Each command is a thin shell: it reads settings once, calls one function of the package and
prints what happened. `python -m ingestion` runs the same commands.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from common.cli import console, fails_cleanly, out, progress_bar, with_settings
from common.contract import Event, json_schemas, parse_event
from common.errors import InvalidEvent
from common.lake import lake_for_writing
from common.settings import LakeSettings
from ingestion.settings import IngestionSettings
from ingestion.sinks import LocalSink, make_sink

if TYPE_CHECKING:
    from common.lake import Lake
    from ingestion.importer import ImportReport


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
@with_settings(IngestionSettings)
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
    settings: IngestionSettings,
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

    target = lake_for_writing(settings.lake)
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


def _parse_map(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    mapping = {}
    for value in values:
        name, sep, target = value.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise click.BadParameter(f"{value!r} is not NAME=TYPE, e.g. click=view")
        mapping[name.strip()] = target.strip()
    return mapping


def _column_list(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(name.strip() for name in value.split(","))
    if not all(names):
        raise click.BadParameter(f"{value!r} has an empty name; give NAME,NAME,...")
    return names


def _print_report(report: ImportReport, target: Lake) -> None:
    """One file's summary: what landed, what was refused, and why."""
    from ingestion.importer import event_type_key

    out.print(
        f"{report.source}: {report.rows:,} {report.kind} rows, {report.accepted:,} "
        f"imported, {report.rejected:,} refused",
        highlight=False,
    )
    if report.kind == "interactions" and report.accepted:
        out.print(
            f"  {report.new:,} new, {report.accepted - report.new:,} already in the lake "
            "(imported before; the ETL keeps one copy)",
            highlight=False,
        )
    for run, rows in report.taken.items():
        out.print(f"  {rows:,} rows refused by import {run} are now imported", highlight=False)
    if report.repeats:
        out.print(f"  {report.repeats:,} rows repeat an earlier row exactly; each is its own event")
    if report.rescaled:
        out.print(f"  TIMESTAMP read as milliseconds (or microseconds) in {report.rescaled:,} rows")
    for note in report.notes:
        out.print(f"  note: {note}", highlight=False)
    renamed = [
        f"{name} -> {ours} ({count:,})"
        for (name, ours), count in report.mapped.most_common()
        if event_type_key(name) != event_type_key(ours)
    ]
    if renamed:
        out.print(
            f"  event types read as ours: {', '.join(renamed)}; the shop's names are kept in "
            "shop_event_type, and --map NAME=TYPE changes a mapping",
            highlight=False,
        )
    for name, count in report.unmapped.most_common():
        console.print(
            f"  EVENT_TYPE {name!r} ({count:,} rows) is none of view, add_to_cart, "
            f"purchase; the rows are kept in quarantine. Import them with --map {name}=view "
            "(or add_to_cart, purchase): rows already imported are not added twice",
            highlight=False,
            markup=False,
        )
    if report.rejected:
        _print_problems(report)
        assert report.quarantine is not None
        console.print(f"  refused rows and reasons: {target.url(report.quarantine)}")


def _print_problems(report: ImportReport) -> None:
    """Each kind of problem once, with how many rows it refused and its first lines."""
    for kind, count in report.kinds.most_common():
        console.print(f"  {count:,} rows: {kind}", highlight=False, markup=False)
        for line, message in report.examples[kind]:
            console.print(f"    {report.source}:{line}: {message}", highlight=False, markup=False)


def _existing_file(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> Path | str | None:
    """A local file that exists, or an `s3://` URL (checked when it is downloaded)."""
    if value is None or value.startswith("s3://"):
        return value
    path = Path(value)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise click.BadParameter(f"{value} {what}")
    return path


@click.command(name="import")
@click.argument("interactions", required=False, callback=_existing_file)
@click.option(
    "--items",
    callback=_existing_file,
    help="Items CSV (Personalize format), plain or gzip; a path or an s3:// URL.",
)
@click.option(
    "--users",
    callback=_existing_file,
    help="Users CSV (Personalize format), plain or gzip; a path or an s3:// URL.",
)
@click.option(
    "--map",
    "mappings",
    multiple=True,
    callback=_parse_map,
    metavar="NAME=TYPE",
    help="Map a shop's event type to view, add_to_cart or purchase. Repeatable.",
)
@click.option(
    "--event-type",
    type=click.Choice(["view", "add_to_cart", "purchase"]),
    help="The type of rows with no EVENT_TYPE (every row, if the file has no such column).",
)
@click.option(
    "--category-column",
    metavar="COLUMN",
    help="Items column holding the category; of a |-joined list, the first value. "
    "[default: CATEGORY, CATEGORY_L1 or CATEGORIES]",
)
@click.option(
    "--title-column",
    metavar="COLUMN",
    help="Items column holding the product's name. [default: TITLE, NAME or PRODUCT_NAME]",
)
@click.option(
    "--price-column",
    metavar="COLUMN",
    help="Items column holding the product's price. [default: PRICE]",
)
@click.option(
    "--columns",
    callback=_column_list,
    metavar="NAMES",
    help="The interactions file's columns in order, for a file without a header row: "
    "user, item, event and timestamp (or Personalize's names), others kept as properties. "
    "Example: --columns user,item,category,event,timestamp",
)
@click.option("--strict", is_flag=True, help="Exit with status 1 if any row was refused.")
@click.option(
    "--allow-refused",
    is_flag=True,
    help="Exit with status 0 even when more than half a file's rows were refused.",
)
@with_settings(LakeSettings)
@fails_cleanly
def import_(
    interactions: Path | str | None,
    items: Path | str | None,
    users: Path | str | None,
    mappings: dict[str, str],
    event_type: str | None,
    category_column: str | None,
    title_column: str | None,
    price_column: str | None,
    columns: tuple[str, ...] | None,
    strict: bool,
    allow_refused: bool,
    settings: LakeSettings,
) -> None:
    """Import a shop's history from Amazon Personalize CSV files (plain or gzip), on disk
    or in S3 (s3://bucket/key, with your AWS credentials).

    Every file is read and checked before anything is written. Bad rows are listed with
    their line numbers and kept in quarantine/import/; the good rows land in the raw zone.
    Importing an export that overlaps an earlier one adds only the new rows. Then run
    `recs etl`; docs/own-data.md walks through it.

    \b
    Example: recs import interactions.csv.gz --items items.csv.gz --category-column GENRES
    """
    from ingestion.importer import ImportOptions, import_files

    if interactions is None and items is None and users is None:
        raise click.UsageError("give an interactions CSV, --items, --users, or several")
    options = ImportOptions(
        event_types=mappings,
        event_type=event_type,
        category_column=category_column,
        title_column=title_column,
        price_column=price_column,
        columns=columns,
    )
    target = lake_for_writing(settings.lake)
    with progress_bar("rows read", None) as advance:
        reports = import_files(
            target,
            interactions=interactions,
            items=items,
            users=users,
            options=options,
            progress=advance,
        )
    for report in reports:
        _print_report(report, target)
    refused = sum(report.rejected for report in reports)
    mostly = [r for r in reports if r.mostly_refused]
    for report in mostly:
        console.print(
            f"{report.source}: {report.rejected:,} of {report.rows:,} rows refused, more than "
            "half: check the file's columns, its TIMESTAMP unit and the --map options above. "
            "The rows that were imported stay imported; pass --allow-refused to accept a run "
            "like this",
            highlight=False,
            markup=False,
        )
    out.print("Next: recs etl, to curate what was imported", highlight=False)
    if (strict and refused) or (mostly and not allow_refused):
        sys.exit(1)


def _read_events(sources: tuple[str, ...]) -> Iterator[tuple[str, int, str]]:
    for source in sources or ("-",):
        if source != "-" and not Path(source).is_file():
            raise click.BadParameter(f"{source} is not a file", param_hint="FILE")
        handle = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
        try:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield source, number, line
        except UnicodeDecodeError as exc:
            raise click.BadParameter(
                f"{source} is not UTF-8 text ({exc.reason}); events are UTF-8 JSON lines",
                param_hint="FILE",
            ) from None
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
@with_settings(IngestionSettings)
@fails_cleanly
def ingest(
    sources: tuple[str, ...],
    batch: int,
    flush: bool,
    strict: bool,
    settings: IngestionSettings,
) -> None:
    """Validate events (JSON lines, from files or stdin) and put them on the sink.

    Each line is one event, as POST /v1/events takes it. Bad lines are reported with their
    line numbers; the good ones are delivered.

    \b
    Example: echo '{"userId":"U1","itemId":"I100","event_type":"view"}' | recs ingest -
    """
    if settings.sink == "local":
        lake_for_writing(settings.lake)
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
@with_settings(IngestionSettings, fixed={"sink": "local"})
@fails_cleanly
def flush_command(force: bool, settings: IngestionSettings) -> None:
    """Write events waiting in the local event log to the raw zone.

    Run it from cron, or let `recs serve` flush in the background.

    \b
    Example: recs flush --due
    """
    lake_for_writing(settings.lake)
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
