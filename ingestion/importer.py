"""`recs import`: a shop's history, in Amazon Personalize's CSV shapes, into the raw zone.

Interactions: `USER_ID,ITEM_ID,TIMESTAMP` are required, as in Personalize. `EVENT_TYPE` is
mapped onto ours (view, add_to_cart, purchase) through common spellings and `--map`, and a
name that is not ours (`fav`, `pv`) is kept beside it as `shop_event_type`; a file without
the column says what its rows are with `--event-type`. `SESSION_ID`, `PRICE` and `QUANTITY`
fill the matching event fields; every other column goes into the event's `properties`.
TIMESTAMP is Unix seconds, as Personalize has it; milliseconds (and microseconds) are told
by their size, and RFC 3339 text is read too. History of any age imports: the "not before
2000" rule is for live events only, and the ETL knows imported objects by their stream.

Items: `ITEM_ID` is required. `CREATION_TIMESTAMP`, a title, a category, `PRICE` and `BRAND`
are optional; every other column is kept as an attribute. Users: `USER_ID` plus attributes.

Nothing is written until every file has been read through: a wrong header or an unreadable
line anywhere stops the import with the file and line, and leaves the lake as it was. Then
the good rows land, and each refused row goes, with its line number and reason, to
`quarantine/import/<run>/`.

An event's id comes from its content (user, item, type, time and every other value) and how
many identical rows came before it in the same file. So importing an export that overlaps an
earlier one adds only the new rows (the ETL keeps one copy of each id), while a shop's two
identical invoice lines stay two events.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from common.contract import parse_item, parse_user
from common.errors import InvalidRecord
from common.lake import Lake
from common.layout import QUARANTINE_IMPORT
from ingestion.csv_files import CsvFile, InvalidImportFile, number, parse_timestamp
from ingestion.fast_rows import GiveUp, read_fast
from ingestion.import_options import (
    CATEGORY_COLUMNS,
    DEFAULT_EVENT_TYPE_MAP,
    EXAMPLES_PER_KIND,
    TITLE_COLUMNS,
    ImportOptions,
    ImportReport,
    event_type_key,
    problem_kind,
)
from ingestion.interactions import (
    RowReader,
    Spool,
    mark_taken,
    quarantine,
    read_rows,
    write_interactions,
)
from ingestion.raw import write_catalog_dump

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "DEFAULT_EVENT_TYPE_MAP",
    "EXAMPLES_PER_KIND",
    "ImportOptions",
    "ImportReport",
    "event_type_key",
    "import_files",
    "problem_kind",
]


# -- catalog ---------------------------------------------------------------------------------


@dataclass
class _Catalog:
    """One catalog file read and checked: its records, its refusals and its report."""

    report: ImportReport
    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[str] = field(default_factory=list)


def _item(
    row: Mapping[str, str], title: str | None, category: str | None, price: str | None
) -> tuple[dict[str, Any], bool]:
    record: dict[str, Any] = {"item_id": row["ITEM_ID"]}
    rescaled = False
    attributes: dict[str, Any] = {}
    for column, value in row.items():
        if column == "ITEM_ID" or value == "":
            continue
        if column == "CREATION_TIMESTAMP":
            record["created_at"], rescaled = parse_timestamp(value, column)
        elif column == title:
            record["title"] = value
        elif column == category:
            record["category"] = value.split("|")[0].strip() or None
            if "|" in value:  # the whole list stays an attribute
                attributes[column.lower()] = value
        elif column == price:
            record["price"] = number(value, column, float)
        elif column == "BRAND":
            record["brand"] = value
        else:
            attributes[column.lower()] = value
    record["attributes"] = attributes
    return parse_item(record).to_record(), rescaled


def _read_catalog(
    source: CsvFile,
    kind: str,
    title: str | None,
    category: str | None,
    price: str | None = None,
) -> _Catalog:
    catalog = _Catalog(ImportReport(source=source.name, kind=kind))
    report = catalog.report
    for line, row in source.records():
        report.rows += 1
        try:
            values = source.checked(row)
            if kind == "items":
                record, rescaled = _item(values, title, category, price)
                report.rescaled += rescaled
            else:
                attributes = {c.lower(): v for c, v in values.items() if c != "USER_ID" and v}
                user = parse_user({"user_id": values["USER_ID"], "attributes": attributes})
                record = user.to_record()
        except InvalidRecord as exc:
            report.refuse(line, str(exc))
            reject = {"source": source.name, "line": line, "reason": str(exc), "row": row}
            catalog.rejects.append(json.dumps(reject, ensure_ascii=False))
            continue
        report.accepted += 1
        catalog.records.append(record)
    return catalog


def _items_file(
    source: CsvFile, options: ImportOptions
) -> tuple[str | None, str | None, str | None]:
    """The items file's title, category and price columns, after checking its header."""
    source.require(["ITEM_ID"], "an items file")
    if len(source.header) < 2:
        raise InvalidImportFile(
            f"{source.name}: an items file needs ITEM_ID and at least one more column "
            "(a title, a category, a price ...), as in Personalize"
        )
    title = source.column(options.title_column, "--title-column") or next(
        (c for c in TITLE_COLUMNS if c in source.header), None
    )
    category = source.column(options.category_column, "--category-column") or next(
        (c for c in CATEGORY_COLUMNS if c in source.header), None
    )
    price = source.column(options.price_column, "--price-column") or (
        "PRICE" if "PRICE" in source.header else None
    )
    return title, category, price


# -- the import ------------------------------------------------------------------------------


def _interactions_file(path: Path, name: str, options: ImportOptions) -> CsvFile:
    """The interactions file, its header checked: the columns it needs, and an EVENT_TYPE
    column or `--event-type`."""
    events_file = CsvFile(path, options.columns, name=name)
    events_file.require(
        ["USER_ID", "ITEM_ID", "TIMESTAMP"],
        "an interactions file",
        headless_hint="name its columns in order with --columns, for instance "
        "--columns user,item,event,timestamp (other names are kept as properties)",
    )
    if "EVENT_TYPE" not in events_file.header and options.event_type is None:
        raise InvalidImportFile(
            f"{events_file.name}: the header has no EVENT_TYPE; say what every row is with "
            "--event-type purchase (or view, add_to_cart)"
        )
    return events_file


def _read_interactions(
    source: CsvFile,
    options: ImportOptions,
    folder: Path,
    now: datetime,
    progress: Callable[[int], None] | None,
) -> tuple[ImportReport, Spool]:
    """The first pass over the interactions file: vectorized, or row by row where the
    vectorized reader gives up on the file."""
    report = ImportReport(source=source.name, kind="interactions")
    spool = Spool(folder / "fast")
    spool.folder.mkdir()
    try:
        with gzip.open(spool.rejects, "wb", compresslevel=1) as rejects:
            read_fast(spool, RowReader(source, options, report, now, rejects), progress)
        return report, spool
    except GiveUp:
        pass
    report = ImportReport(source=source.name, kind="interactions")
    spool = Spool(folder / "rows")
    spool.folder.mkdir()
    read_rows(source, options, spool, report, now, progress)
    return report, spool


def _local(source: Path | str, folder: Path, s3: S3Client | None) -> tuple[Path, str]:
    """A file to read and its name: a path as it is, an `s3://` URL downloaded to `folder`
    (where Personalize users keep their exports)."""
    text = str(source)
    if not text.startswith("s3://"):
        return Path(source), text
    bucket, _, key = text.removeprefix("s3://").partition("/")
    if not bucket or not key or key.endswith("/"):
        raise InvalidImportFile(f"{text}: name one object, as in s3://bucket/exports/file.csv")
    target = folder / f"{len(list(folder.iterdir()))}-{Path(key).name}"
    try:
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        s3.download_file(bucket, key, str(target))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            raise InvalidImportFile(f"{text}: no such object") from None
        if code in ("403", "AccessDenied"):
            raise InvalidImportFile(
                f"{text}: access denied; the credentials in use need s3:GetObject on it"
            ) from None
        raise InvalidImportFile(f"{text}: cannot be downloaded ({code}: {exc})") from None
    except BotoCoreError as exc:
        raise InvalidImportFile(f"{text}: cannot be downloaded ({exc})") from None
    return target, text


def import_files(
    lake: Lake,
    *,
    interactions: Path | str | None = None,
    items: Path | str | None = None,
    users: Path | str | None = None,
    options: ImportOptions | None = None,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    s3: S3Client | None = None,
) -> list[ImportReport]:
    """Import a shop's interactions, items and users files (paths, or `s3://` URLs); one
    report per file.

    Every file is read through and checked before anything is written; see the module
    docstring for the rules. Raises `InvalidImportFile` for a file that cannot be used.
    """
    if interactions is None and items is None and users is None:
        raise InvalidImportFile("nothing to import: give an interactions file, items or users")
    options = options or ImportOptions()
    options.mapping()
    with tempfile.TemporaryDirectory(prefix="recs-import-") as folder:
        downloads = Path(folder, "downloads")
        downloads.mkdir()
        files = [
            None if source is None else _local(source, downloads, s3)
            for source in (interactions, items, users)
        ]
        return _import(lake, files, options, now or datetime.now(UTC), progress, Path(folder))


def _import(
    lake: Lake,
    files: list[tuple[Path, str] | None],
    options: ImportOptions,
    now: datetime,
    progress: Callable[[int], None] | None,
    folder: Path,
) -> list[ImportReport]:
    run = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    interactions, items, users = files
    # Open every file and check every header first: a bad items header must not leave an
    # interactions import behind.
    events_file = _interactions_file(*interactions, options) if interactions else None
    items_file = CsvFile(items[0], name=items[1]) if items is not None else None
    columns = _items_file(items_file, options) if items_file is not None else (None,) * 3
    users_file = CsvFile(users[0], name=users[1]) if users is not None else None
    if users_file is not None:
        users_file.require(["USER_ID"], "a users file")

    catalogs = {}
    if items_file is not None:
        catalogs["items"] = _read_catalog(items_file, "items", *columns)
        if columns[0] is None:
            catalogs["items"].report.notes.append(
                f"no title column ({', '.join(TITLE_COLUMNS)}); name one with --title-column"
            )
        if columns[1] is None:
            catalogs["items"].report.notes.append(
                f"no category column ({', '.join(CATEGORY_COLUMNS)}); name one with "
                "--category-column"
            )
    if users_file is not None:
        catalogs["users"] = _read_catalog(users_file, "users", None, None)

    reports: list[ImportReport] = []
    if events_file is not None:
        report, spool = _read_interactions(events_file, options, folder, now, progress)
        # Everything is read and checked: from here on, the import writes.
        write_interactions(lake, spool, report, run)
        report.taken = mark_taken(lake, spool, options, now, run)
        reports.append(report)
    for kind, catalog in catalogs.items():
        if catalog.rejects:
            prefix = f"{QUARANTINE_IMPORT}/{run}/{kind}"
            quarantine(lake, prefix, iter(catalog.rejects))
            catalog.report.quarantine = prefix
        reports.append(catalog.report)
    if any(c.records for c in catalogs.values()):
        prefix = write_catalog_dump(
            lake,
            now,
            items=catalogs["items"].records if "items" in catalogs else [],
            users=catalogs["users"].records if "users" in catalogs else [],
        )
        for catalog in catalogs.values():
            catalog.report.objects = [prefix]
    return reports
