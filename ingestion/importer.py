"""Import a shop's real history from Amazon Personalize's CSV formats into the raw zone.

Interactions: `USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE` (TIMESTAMP in epoch seconds), plus the
optional `EVENT_VALUE`, `IMPRESSION`, `RECOMMENDATION_ID` and any custom columns. We also read
`SESSION_ID`, `PRICE` and `QUANTITY` into the matching event fields; every other column goes
into the event's `properties`.

Items: `ITEM_ID,CREATION_TIMESTAMP` plus metadata; `TITLE` (or `NAME`), `CATEGORY` (or
`CATEGORY_L1`, `CATEGORIES`, whose first `|` value is the category), `PRICE` and `BRAND` fill
the catalog contract, the rest become attributes. Users: `USER_ID` plus attributes.

Every row is validated against the contracts. A bad row is reported with its line number
and written to `quarantine/import/<run>/`; the good rows still land. Reading streams the file,
so memory does not grow with its length. Event ids and object names derive from the file's
content and line numbers: importing the same file twice replaces, it does not duplicate.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from ingestion.contract import (
    EVENT_TYPES,
    Event,
    parse_event,
    parse_item,
    parse_user,
)
from ingestion.errors import IngestionError, InvalidRecord, Problem
from ingestion.lake import Lake
from ingestion.raw import HOUR_MS, RawEventWriter, join_lines, write_catalog_dump

IMPORT_STREAM: Final = "recs-import"
REQUIRED_INTERACTION_COLUMNS: Final = ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE")
_ROW_NAMESPACE: Final = uuid.UUID("3c2b1a7e-2d4f-4b5e-8f61-7a9c0d1e2f3a")
_REJECTS_PER_PART: Final = 100_000
_Record = TypeVar("_Record")
#: Common spellings of our three event types in shops' exports; `--map` adds more.
DEFAULT_EVENT_TYPE_MAP: Final = {
    "view": "view",
    "click": "view",
    "detail_view": "view",
    "product_view": "view",
    "add_to_cart": "add_to_cart",
    "addtocart": "add_to_cart",
    "cart": "add_to_cart",
    "purchase": "purchase",
    "order": "purchase",
    "buy": "purchase",
    "transaction": "purchase",
}


class InvalidImportFile(IngestionError):
    """An import file cannot be read at all (missing file, wrong header)."""


@dataclass
class ImportReport:
    """The outcome of one import: what landed, what was refused and where it went."""

    source: str
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    quarantine: str | None = None

    def note(self, line: int, message: str) -> None:
        """Count a refused row, keeping the first problems for the summary."""
        self.rejected += 1
        if len(self.problems) < 1000:
            self.problems.append((line, message))


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row with upper-cased column names) for each data row of a CSV file."""
    if not path.is_file():
        raise InvalidImportFile(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip().upper() for name in next(reader)]
        except StopIteration:
            raise InvalidImportFile(f"{path}: the file is empty; it needs a header row") from None
        if len(set(header)) != len(header):
            raise InvalidImportFile(f"{path}: the header repeats a column: {','.join(header)}")
        yield 1, {name: name for name in header}
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InvalidImportFile(
                    f"{path}, line {reader.line_num}: not readable as CSV ({exc}); the rows "
                    "before it were imported"
                ) from None
            if not values:
                continue
            if len(values) != len(header):
                # Keep the values for the quarantine, and let the caller refuse the row.
                yield reader.line_num, {f"_{i}": v for i, v in enumerate(values)}
            else:
                yield reader.line_num, dict(zip(header, values, strict=True))


def _check_width(row: Mapping[str, str], header: Mapping[str, str]) -> None:
    if row.keys() != header.keys():
        raise InvalidRecord(
            [Problem("row", f"row has {len(row)} values for {len(header)} columns")]
        )


def _require_columns(path: Path, header: Mapping[str, str], required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise InvalidImportFile(
            f"{path}: the header lacks {', '.join(missing)}. Amazon Personalize's format "
            f"starts with {','.join(required)} (found: {','.join(header)})"
        )


def _epoch(value: str, column: str) -> str:
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidRecord(
            [Problem(column, f"{column} must be epoch seconds (got {value!r})")]
        ) from None
    if not math.isfinite(seconds):
        raise InvalidRecord([Problem(column, f"{column} must be a finite number")])
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _number(value: str, column: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(value)
    except ValueError:
        word = "a whole number" if kind is int else "a number"
        raise InvalidRecord([Problem(column, f"{column} must be {word} (got {value!r})")]) from None


class _RejectWriter:
    """Streams refused rows to `quarantine/import/<run>/rejected-NNNNN.jsonl` in parts."""

    def __init__(self, lake: Lake, prefix: str) -> None:
        self._lake = lake
        self.prefix = prefix
        self._lines: list[str] = []
        self._part = 0
        self.written = False

    def add(self, source: str, line: int, message: str, row: Mapping[str, str]) -> None:
        record = {"source": source, "line": line, "error": message, "row": dict(row)}
        self._lines.append(json.dumps(record, ensure_ascii=False))
        if len(self._lines) >= _REJECTS_PER_PART:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            self._part += 1
            key = f"{self.prefix}/rejected-{self._part:05d}.jsonl"
            self._lake.write_bytes(key, join_lines(self._lines))
            self._lines = []
            self.written = True


def _event_type(value: str, mapping: Mapping[str, str]) -> str:
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    if key in mapping:
        return mapping[key]
    raise InvalidRecord(
        [
            Problem(
                "EVENT_TYPE",
                f"EVENT_TYPE {value!r} is not one of {', '.join(EVENT_TYPES)}; map it with "
                f"--map {value}=view (or add_to_cart, purchase)",
            )
        ]
    )


def _interaction(
    row: Mapping[str, str], line: int, mapping: Mapping[str, str], file_key: str
) -> Event:
    event_type = _event_type(row["EVENT_TYPE"], mapping)
    record: dict[str, Any] = {
        "user_id": row["USER_ID"],
        "item_id": row["ITEM_ID"],
        "event_type": event_type,
        "ts": _epoch(row["TIMESTAMP"], "TIMESTAMP"),
    }
    properties: dict[str, Any] = {}
    for column, value in row.items():
        if column in REQUIRED_INTERACTION_COLUMNS or value == "":
            continue
        if column == "SESSION_ID":
            record["session_id"] = value
        elif column == "PRICE":
            record["price"] = _number(value, column, float)
        elif column == "QUANTITY":
            record["quantity"] = _number(value, column, int)
        else:
            properties[column.lower()] = value
    if properties:
        record["properties"] = properties
    record["event_id"] = str(uuid.uuid5(_ROW_NAMESPACE, f"{file_key}:{line}"))
    return parse_event(record)


def import_interactions(
    path: Path,
    lake: Lake,
    *,
    event_type_map: Mapping[str, str] | None = None,
    run: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate a Personalize interactions CSV row by row and write the good rows to raw/."""
    mapping = {**DEFAULT_EVENT_TYPE_MAP, **(event_type_map or {})}
    for name, target in mapping.items():
        if target not in EVENT_TYPES:
            raise InvalidImportFile(
                f"--map {name}={target}: the target must be one of {', '.join(EVENT_TYPES)}"
            )
    rows = _rows(path)
    _, header = next(rows)
    _require_columns(path, header, REQUIRED_INTERACTION_COLUMNS)
    # A row's id is the file's content hash and its line: importing the same file again gives
    # the same ids (the ETL drops the copies), and two different files never share an id.
    digest = _digest(path)
    run = run or f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{digest[:8]}"
    report = ImportReport(source=str(path))
    rejects = _RejectWriter(lake, f"quarantine/import/{run}")

    def convert(line: int, row: Mapping[str, str]) -> Event:
        return _interaction(row, line, mapping, digest)

    shown = 0  # rows already reported to `progress`, refused ones included
    with RawEventWriter(lake, stream=IMPORT_STREAM, run_key=digest) as writer:
        for event in _validated(path, rows, header, convert, report, rejects):
            ts_ms = int(event.ts.timestamp() * 1000)
            writer.add(ts_ms - ts_ms % HOUR_MS, [event.to_json_line()])
            if progress and report.rows - shown >= 10_000:
                progress(report.rows - shown)
                shown = report.rows
    if progress:
        progress(report.rows - shown)
    report.objects = writer.report.objects
    return report


def _validated(
    path: Path,
    rows: Iterator[tuple[int, dict[str, str]]],
    header: Mapping[str, str],
    convert: Callable[[int, Mapping[str, str]], _Record],
    report: ImportReport,
    rejects: _RejectWriter,
) -> Iterator[_Record]:
    """Each row that converts; each that does not is counted and sent to quarantine."""
    for line, row in rows:
        report.rows += 1
        try:
            _check_width(row, header)
            record = convert(line, row)
        except InvalidRecord as exc:
            report.note(line, str(exc))
            rejects.add(str(path), line, str(exc), row)
            continue
        report.accepted += 1
        yield record
    rejects.flush()
    report.quarantine = rejects.prefix if rejects.written else None


def _catalog_rows(
    path: Path, lake: Lake, run: str, kind: str
) -> tuple[list[dict[str, Any]], ImportReport]:
    rows = _rows(path)
    _, header = next(rows)
    id_column = "ITEM_ID" if kind == "items" else "USER_ID"
    required = ("ITEM_ID", "CREATION_TIMESTAMP") if kind == "items" else ("USER_ID",)
    _require_columns(path, header, required)
    report = ImportReport(source=str(path))
    rejects = _RejectWriter(lake, f"quarantine/import/{run}/{kind}")

    def convert(_line: int, row: Mapping[str, str]) -> dict[str, Any]:
        return _item(row) if kind == "items" else _user(row, id_column)

    records = list(_validated(path, rows, header, convert, report, rejects))
    return records, report


_ITEM_COLUMNS: Final = {
    "TITLE": "title",
    "NAME": "title",
    "PRODUCT_NAME": "title",
    "CATEGORY": "category",
    "CATEGORY_L1": "category",
    "CATEGORIES": "category",
    "PRICE": "price",
    "BRAND": "brand",
}


def _item(row: Mapping[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "item_id": row["ITEM_ID"],
        "created_at": _epoch(row["CREATION_TIMESTAMP"], "CREATION_TIMESTAMP"),
    }
    attributes: dict[str, Any] = {}
    for column, value in row.items():
        if column in ("ITEM_ID", "CREATION_TIMESTAMP") or value == "":
            continue
        target = _ITEM_COLUMNS.get(column)
        if target == "price":
            record["price"] = _number(value, column, float)
        elif target == "category":
            record.setdefault("category", value.split("|")[0])
            if "|" in value:
                attributes[column.lower()] = value
        elif target is not None:
            record.setdefault(target, value)
        else:
            attributes[column.lower()] = value
    record["attributes"] = attributes
    return parse_item(record).to_record()


def _user(row: Mapping[str, str], id_column: str) -> dict[str, Any]:
    attributes = {c.lower(): v for c, v in row.items() if c != id_column and v != ""}
    return parse_user({"user_id": row[id_column], "attributes": attributes}).to_record()


def import_catalog(
    lake: Lake,
    *,
    items: Path | None = None,
    users: Path | None = None,
    dumped_at: datetime | None = None,
    run: str | None = None,
) -> list[ImportReport]:
    """Validate items and users CSVs and write the good rows as one raw catalog dump."""
    dumped_at = dumped_at or datetime.now(UTC)
    run = run or f"{dumped_at:%Y%m%dT%H%M%SZ}"
    reports = []
    item_records: list[dict[str, Any]] = []
    user_records: list[dict[str, Any]] = []
    if items is not None:
        item_records, report = _catalog_rows(items, lake, run, "items")
        reports.append(report)
    if users is not None:
        user_records, report = _catalog_rows(users, lake, run, "users")
        reports.append(report)
    if item_records or user_records:
        prefix = write_catalog_dump(lake, dumped_at, items=item_records, users=user_records)
        for report in reports:
            report.objects = [prefix]
    return reports
