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
import hashlib
import json
import re
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from common.contract import EVENT_TYPES, epoch_ms, parse_event, parse_item, parse_user
from common.errors import InvalidRecord, Problem
from common.lake import Lake
from common.layout import QUARANTINE_IMPORT
from ingestion.csv_files import CsvFile, InvalidImportFile, number, parse_timestamp
from ingestion.known import ids_in_lake
from ingestion.raw import HISTORY_STREAM, HOUR_MS, RawEventWriter, join_lines, write_catalog_dump

_ROW_NAMESPACE: Final = uuid.UUID("3c2b1a7e-2d4f-4b5e-8f61-7a9c0d1e2f3a")
_REJECTS_PER_PART: Final = 100_000
#: Problems kept per file for the summary; every refused row is in the quarantine.
_PROBLEMS_KEPT: Final = 1000

#: Common spellings of our three event types in shops' exports; `--map` adds more. Keys are
#: compared with case, spaces, dashes and underscores ignored: "AddToCart" is "add_to_cart".
#: A favourite or a wish list is an intent to buy short of a cart; it is mapped to add_to_cart,
#: and the shop's own name stays in the curated `shop_event_type`, so an analyst (or a later
#: `--map fav=view`) can tell the two apart.
DEFAULT_EVENT_TYPE_MAP: Final = {
    "view": "view",
    "pv": "view",
    "page_view": "view",
    "click": "view",
    "detail": "view",
    "detail_view": "view",
    "product_view": "view",
    "add_to_cart": "add_to_cart",
    "cart": "add_to_cart",
    "fav": "add_to_cart",
    "favorite": "add_to_cart",
    "favourite": "add_to_cart",
    "wishlist": "add_to_cart",
    "add_to_wishlist": "add_to_cart",
    "purchase": "purchase",
    "order": "purchase",
    "buy": "purchase",
    "transaction": "purchase",
}
TITLE_COLUMNS: Final = ("TITLE", "NAME", "PRODUCT_NAME")
CATEGORY_COLUMNS: Final = ("CATEGORY", "CATEGORY_L1", "CATEGORIES")
_EVENT_FIELDS: Final = {"SESSION_ID": "session_id", "PRICE": "price", "QUANTITY": "quantity"}
_SPELLING: Final = re.compile(r"[\s_\-]+")


def event_type_key(name: str) -> str:
    """An event type's spelling with case, spaces, dashes and underscores ignored."""
    return _SPELLING.sub("", name.strip().lower())


@dataclass(frozen=True)
class ImportOptions:
    """How to read a shop's files: its event types, and which item columns mean what."""

    #: The shop's event type -> ours, on top of `DEFAULT_EVENT_TYPE_MAP`.
    event_types: Mapping[str, str] = field(default_factory=dict)
    #: Our type for rows with no EVENT_TYPE (or a file without the column).
    event_type: str | None = None
    #: The items column that holds the category (the first of a `|`-joined list).
    category_column: str | None = None
    #: The items column that holds the product's name.
    title_column: str | None = None
    #: The interactions file's columns, in order, for a file without a header row.
    columns: tuple[str, ...] | None = None

    def mapping(self) -> dict[str, str]:
        """Every known spelling -> our event type; refuses a target that is not ours."""
        mapping = {event_type_key(k): v for k, v in DEFAULT_EVENT_TYPE_MAP.items()}
        for name, target in self.event_types.items():
            if target not in EVENT_TYPES:
                raise InvalidImportFile(
                    f"--map {name}={target}: the target must be one of {', '.join(EVENT_TYPES)}"
                )
            mapping[event_type_key(name)] = target
        if self.event_type is not None and self.event_type not in EVENT_TYPES:
            raise InvalidImportFile(
                f"--event-type {self.event_type}: must be one of {', '.join(EVENT_TYPES)}"
            )
        return mapping


@dataclass
class ImportReport:
    """The outcome of importing one file: what landed, what was refused and where it went."""

    source: str
    kind: str
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    #: The first problems, (line, message); every refused row is in the quarantine.
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: Event types no mapping covers, and how many rows each.
    unmapped: Counter[str] = field(default_factory=Counter)
    #: (the shop's event type, ours) -> rows, for every type that was mapped.
    mapped: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Rows whose TIMESTAMP was read as milliseconds or microseconds, not seconds.
    rescaled: int = 0
    #: Rows that repeat an earlier row of the file exactly; each is its own event.
    repeats: int = 0
    #: Accepted events whose id the lake did not hold yet (the rest were imported before).
    new: int = 0
    #: Hints for the user: a column we could not place, for instance.
    notes: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    quarantine: str | None = None

    #: Refused rows by kind of problem (`problem_kind`), and the first examples of each.
    kinds: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    def refuse(self, line: int, message: str) -> None:
        """Count a refused row, keeping the first problems for the summary."""
        self.rejected += 1
        if len(self.problems) < _PROBLEMS_KEPT:
            self.problems.append((line, message))
        kind = problem_kind(message)
        self.kinds[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES_PER_KIND:
            shown.append((line, message))

    @property
    def mostly_refused(self) -> bool:
        """More than half the rows were refused: a wrong file, column or mapping, most
        likely, rather than a few bad rows."""
        return self.rejected * 2 > self.rows


#: Example lines shown for each kind of problem.
EXAMPLES_PER_KIND: Final = 3
_GOT: Final = re.compile(r"\s*\(got .*\)$")
_QUOTED: Final = re.compile(r"'[^']*'")
_NUMBER: Final = re.compile(r"\d[\d,.]*")


def problem_kind(message: str) -> str:
    """A refusal's message without what varies from row to row (the value it got, quoted
    names, numbers): rows refused for the same reason share it."""
    return _NUMBER.sub("N", _QUOTED.sub("'…'", _GOT.sub("", message)))


# -- reading CSV -----------------------------------------------------------------------------


@dataclass
class _Spool:
    """Accepted events (content without an id) and refused rows, on local disk until the
    whole file has been read; only then does anything go to the lake."""

    folder: Path
    #: 16 bytes of each event's content hash, in file order, to find identical rows.
    digests: bytearray = field(default_factory=bytearray)
    #: The hash of all accepted content, naming the raw objects: the same rows, the same keys.
    content: Any = field(default_factory=hashlib.sha256)
    #: The hours (epoch ms) the accepted events fall in.
    hours: set[int] = field(default_factory=set)

    @property
    def events(self) -> Path:
        """`<ts_ms>\t<event JSON without its id>` per accepted row, gzip."""
        return self.folder / "events.jsonl.gz"

    @property
    def rejects(self) -> Path:
        """One quarantine record per refused row, gzip."""
        return self.folder / "rejects.jsonl.gz"

    def ranks(self) -> npt.NDArray[np.int64]:
        """For each event, how many identical events came before it in the file."""
        pairs = np.frombuffer(bytes(self.digests), dtype=np.uint64).reshape(-1, 2)
        n = len(pairs)
        order = np.lexsort((np.arange(n), pairs[:, 1], pairs[:, 0]))
        ordered = pairs[order]
        new_group = np.ones(n, dtype=bool)
        new_group[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
        starts = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
        ranks = np.empty(n, dtype=np.int64)
        ranks[order] = np.arange(n) - starts
        return ranks


def _interaction(
    row: Mapping[str, str],
    mapping: Mapping[str, str],
    options: ImportOptions,
    report: ImportReport,
    now: datetime,
) -> tuple[str, str | None, int, bool]:
    """A row as the event's canonical JSON without its id or the shop's own event name, that
    name (when it is not ours), its time in ms, and if the time was rescaled.

    The id comes from that JSON, so the shop's name for a type does not change it: a file
    imported before names were kept, or exported again with other spellings, is not doubled.
    """
    raw_type = row.get("EVENT_TYPE", "")
    shop_type: str | None = None
    if not raw_type.strip():
        if options.event_type is None:
            raise InvalidRecord(
                [
                    Problem(
                        "EVENT_TYPE",
                        "EVENT_TYPE is empty; fill it, or say what untyped rows are with "
                        "--event-type view (or add_to_cart, purchase)",
                    )
                ]
            )
        event_type = options.event_type
    else:
        found = mapping.get(event_type_key(raw_type))
        if found is None:
            report.unmapped[raw_type] += 1
            raise InvalidRecord(
                [
                    Problem(
                        "EVENT_TYPE",
                        f"EVENT_TYPE {raw_type!r} is not one of {', '.join(EVENT_TYPES)}; map "
                        f"it with --map {raw_type}=view (or add_to_cart, purchase)",
                    )
                ]
            )
        event_type = found
        report.mapped[(raw_type, found)] += 1
        if event_type_key(raw_type) != event_type_key(found):
            shop_type = raw_type.strip()
    ts, rescaled = parse_timestamp(row["TIMESTAMP"], "TIMESTAMP")
    record: dict[str, Any] = {
        "user_id": row["USER_ID"],
        "item_id": row["ITEM_ID"],
        "event_type": event_type,
        "ts": ts,
    }
    properties: dict[str, Any] = {}
    for column, value in row.items():
        if column in ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE") or value == "":
            continue
        if column == "PRICE":
            record["price"] = number(value, column, float)
        elif column == "QUANTITY":
            record["quantity"] = number(value, column, int)
        elif column in _EVENT_FIELDS:
            record[_EVENT_FIELDS[column]] = value
        else:
            properties[column.lower()] = value
    if properties:
        record["properties"] = properties
    if shop_type is not None:
        record["shop_event_type"] = shop_type
    event = parse_event(record, now=now, history=True)
    content = event.model_dump_json(exclude_none=True, exclude={"event_id", "shop_event_type"})
    return content, event.shop_event_type, epoch_ms(ts), rescaled


def _read_interactions(
    source: CsvFile,
    options: ImportOptions,
    spool: _Spool,
    now: datetime,
    progress: Callable[[int], None] | None,
) -> ImportReport:
    """The first pass: every row checked, accepted events and refusals spooled to disk."""
    mapping = options.mapping()
    report = ImportReport(source=str(source.path), kind="interactions")
    shown = 0
    with (
        gzip.open(spool.events, "wb", compresslevel=1) as events,
        gzip.open(spool.rejects, "wb", compresslevel=1) as rejects,
    ):
        for line, row in source.records():
            report.rows += 1
            try:
                content, shop_type, ts_ms, rescaled = _interaction(
                    source.checked(row), mapping, options, report, now
                )
            except InvalidRecord as exc:
                report.refuse(line, str(exc))
                reject = {"source": str(source.path), "line": line, "reason": str(exc), "row": row}
                rejects.write(json.dumps(reject, ensure_ascii=False).encode() + b"\n")
                continue
            report.accepted += 1
            report.rescaled += rescaled
            body = content.encode()
            shop = b"" if shop_type is None else json.dumps(shop_type).encode()
            events.write(b"%d\t%s\t%s\n" % (ts_ms, shop, body))
            spool.digests += hashlib.sha256(body).digest()[:16]
            spool.content.update(shop + b"\t" + body + b"\n")
            spool.hours.add(ts_ms - ts_ms % HOUR_MS)
            if progress is not None and report.rows - shown >= 10_000:
                progress(report.rows - shown)
                shown = report.rows
    if progress is not None:
        progress(report.rows - shown)
    return report


def _write_interactions(lake: Lake, spool: _Spool, report: ImportReport, run: str) -> None:
    """The second pass: spooled events get their ids and land; refusals go to quarantine."""
    ranks = spool.ranks()
    report.repeats = int((ranks > 0).sum())
    existing = ids_in_lake(lake, spool.hours)
    keys = np.empty(len(ranks), dtype=np.uint64)
    with (
        gzip.open(spool.events, "rb") as events,
        RawEventWriter(lake, stream=HISTORY_STREAM, run_key=spool.content.hexdigest()) as writer,
    ):
        for row, (rank, line) in enumerate(zip(ranks.tolist(), events, strict=True)):
            ts_text, shop, body = line.rstrip(b"\n").split(b"\t", 2)
            content = body.decode()
            event_id = uuid.uuid5(_ROW_NAMESPACE, f"{content}#{rank}")
            keys[row] = event_id.int >> 64
            ts_ms = int(ts_text)
            named = f'"shop_event_type":{shop.decode()},' if shop else ""
            writer.add(ts_ms - ts_ms % HOUR_MS, [f'{{"event_id":"{event_id}",{named}{content[1:]}'])
    report.objects = writer.report.objects
    report.new = int(np.count_nonzero(~np.isin(keys, existing)))
    if report.rejected:
        prefix = f"{QUARANTINE_IMPORT}/{run}/interactions"
        with gzip.open(spool.rejects, "rb") as rejects:
            _quarantine(lake, prefix, (line.rstrip(b"\n").decode() for line in rejects))
        report.quarantine = prefix


def _quarantine(lake: Lake, prefix: str, lines: Iterator[str]) -> None:
    part: list[str] = []
    number = 0
    for line in lines:
        part.append(line)
        if len(part) >= _REJECTS_PER_PART:
            number += 1
            lake.write_bytes(f"{prefix}/rejected-{number:05d}.jsonl", join_lines(part))
            part = []
    if part:
        lake.write_bytes(f"{prefix}/rejected-{number + 1:05d}.jsonl", join_lines(part))


# -- catalog ---------------------------------------------------------------------------------


@dataclass
class _Catalog:
    """One catalog file read and checked: its records, its refusals and its report."""

    report: ImportReport
    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[str] = field(default_factory=list)


def _item(
    row: Mapping[str, str], title: str | None, category: str | None
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
        elif column == "PRICE":
            record["price"] = number(value, column, float)
        elif column == "BRAND":
            record["brand"] = value
        else:
            attributes[column.lower()] = value
    record["attributes"] = attributes
    return parse_item(record).to_record(), rescaled


def _read_catalog(source: CsvFile, kind: str, title: str | None, category: str | None) -> _Catalog:
    catalog = _Catalog(ImportReport(source=str(source.path), kind=kind))
    report = catalog.report
    for line, row in source.records():
        report.rows += 1
        try:
            values = source.checked(row)
            if kind == "items":
                record, rescaled = _item(values, title, category)
                report.rescaled += rescaled
            else:
                attributes = {c.lower(): v for c, v in values.items() if c != "USER_ID" and v}
                user = parse_user({"user_id": values["USER_ID"], "attributes": attributes})
                record = user.to_record()
        except InvalidRecord as exc:
            report.refuse(line, str(exc))
            reject = {"source": str(source.path), "line": line, "reason": str(exc), "row": row}
            catalog.rejects.append(json.dumps(reject, ensure_ascii=False))
            continue
        report.accepted += 1
        catalog.records.append(record)
    return catalog


def _items_file(source: CsvFile, options: ImportOptions) -> tuple[str | None, str | None]:
    """The items file's title and category columns, after checking its header."""
    source.require(["ITEM_ID"], "an items file")
    if len(source.header) < 2:
        raise InvalidImportFile(
            f"{source.path}: an items file needs ITEM_ID and at least one more column "
            "(a title, a category, a price ...), as in Personalize"
        )
    title = source.column(options.title_column, "--title-column") or next(
        (c for c in TITLE_COLUMNS if c in source.header), None
    )
    category = source.column(options.category_column, "--category-column") or next(
        (c for c in CATEGORY_COLUMNS if c in source.header), None
    )
    return title, category


# -- the import ------------------------------------------------------------------------------


def _interactions_file(path: Path, options: ImportOptions) -> CsvFile:
    """The interactions file, its header checked: the columns it needs, and an EVENT_TYPE
    column or `--event-type`."""
    events_file = CsvFile(path, options.columns)
    events_file.require(
        ["USER_ID", "ITEM_ID", "TIMESTAMP"],
        "an interactions file",
        headless_hint="name its columns in order with --columns, for instance "
        "--columns user,item,event,timestamp (other names are kept as properties)",
    )
    if "EVENT_TYPE" not in events_file.header and options.event_type is None:
        raise InvalidImportFile(
            f"{events_file.path}: the header has no EVENT_TYPE; say what every row is with "
            "--event-type purchase (or view, add_to_cart)"
        )
    return events_file


def import_files(
    lake: Lake,
    *,
    interactions: Path | None = None,
    items: Path | None = None,
    users: Path | None = None,
    options: ImportOptions | None = None,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[ImportReport]:
    """Import a shop's interactions, items and users files; one report per file.

    Every file is read through and checked before anything is written; see the module
    docstring for the rules. Raises `InvalidImportFile` for a file that cannot be used.
    """
    if interactions is None and items is None and users is None:
        raise InvalidImportFile("nothing to import: give an interactions file, items or users")
    options = options or ImportOptions()
    options.mapping()
    now = now or datetime.now(UTC)
    run = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    # Open every file and check every header first: a bad items header must not leave an
    # interactions import behind.
    events_file = _interactions_file(interactions, options) if interactions else None
    items_file = CsvFile(items) if items is not None else None
    columns = _items_file(items_file, options) if items_file is not None else (None, None)
    users_file = CsvFile(users) if users is not None else None
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
    with tempfile.TemporaryDirectory(prefix="recs-import-") as folder:
        spool = _Spool(Path(folder))
        if events_file is not None:
            reports.append(_read_interactions(events_file, options, spool, now, progress))
        # Everything is read and checked: from here on, the import writes.
        if events_file is not None:
            _write_interactions(lake, spool, reports[0], run)
    for kind, catalog in catalogs.items():
        if catalog.rejects:
            prefix = f"{QUARANTINE_IMPORT}/{run}/{kind}"
            _quarantine(lake, prefix, iter(catalog.rejects))
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
