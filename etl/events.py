"""Reading the raw event zone: JSON lines in, typed Arrow rows and refused records out.

Two paths, one contract. The fast path parses many objects at once with pyarrow's JSON
reader and checks each rule of the event contract with Arrow kernels. It accepts only what it
can prove the contract accepts. Everything else goes through `parse_stored_event`, the
contract itself, which has the last word and words every reason: a line pyarrow cannot parse,
an id with non-ASCII characters, `properties`, an explicit `null`, or camelCase and snake_case
spellings of one field together. A test runs edge cases and fuzzed records through both paths
and checks that they agree.

Why `null` and `properties` leave the fast path: Arrow cannot tell a missing key from a
`null` one, while the contract treats them differently in a few corners (an alias present as
`null` beats the other spelling), and Arrow's JSON reader has no type for a free-form object.
Our own writers never write either, so they cost nothing in the common case.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from common.contract import (
    EARLIEST_HISTORY_TS,
    EARLIEST_TS,
    EVENT_TYPES,
    MAX_CLOCK_SKEW,
    MAX_EVENT_BYTES,
    MAX_ID_LENGTH,
    Event,
    epoch_ms,
    parse_stored_event,
)
from common.errors import InvalidEvent, Problem
from etl.schema import INTERACTIONS_TABLE
from ingestion.raw import GZIP_MAGIC

#: (lake name, other spelling) of each field that has two.
_ALIASES: Final = (
    ("event_id", "eventId"),
    ("user_id", "userId"),
    ("item_id", "itemId"),
    ("event_type", "eventType"),
    ("session_id", "sessionId"),
    ("recommendation_id", "recommendationId"),
    ("shop_event_type", "shopEventType"),
)
#: Every key the fast path understands, with the type pyarrow should parse it as. A key not
#: listed here (`properties`, or one the contract does not know) fails the parse, and the
#: lines go to the contract one by one.
_LAKE_SCHEMA: Final = pa.schema(
    [
        ("event_id", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("event_type", pa.string()),
        ("ts", pa.string()),
        ("session_id", pa.string()),
        ("price", pa.float64()),
        ("quantity", pa.int64()),
        ("recommendation_id", pa.string()),
        ("shop_event_type", pa.string()),
    ]
)
_ANY_SCHEMA: Final = pa.schema([*_LAKE_SCHEMA, *((alias, pa.string()) for _, alias in _ALIASES)])
#: The lake's own spelling first: each column costs parse time, and our writers never use
#: the camelCase aliases. A body that does is parsed again with them.
_PARSERS: Final = tuple(
    pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    for schema in (_LAKE_SCHEMA, _ANY_SCHEMA)
)
#: RFC 3339 as our writers and most producers write it. Other forms the contract accepts
#: (a space for the T, 7 to 9 fraction digits, ...) take the contract's path.
_TS_PATTERN: Final = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
_SLOW_MARKERS: Final = (b"null", b'"properties"')
_SCAN_BYTES: Final = 8 << 20
_NEWLINE: Final = ord("\n")
_BRACE: Final = ord("{")
#: Lines per parse once an object has to be taken apart: small enough that one bad line
#: sends few good ones to the slow path, large enough that pyarrow's overhead stays small.
_CHUNK_LINES: Final = 1024
#: Rows as `read_events` returns them: the curated columns, not yet checked for nulls (the
#: job casts to the curated schema on write), and `_seq`, the object's ordinal and line.
_ROWS: Final = pa.schema(
    [f.with_nullable(True) for f in INTERACTIONS_TABLE.arrow_schema] + [("_seq", pa.int64())]
)
#: The most of one refused record a quarantine line keeps: four of the largest events. A line
#: of 50 MB stays whole in the raw zone, not copied into the quarantine.
MAX_QUARANTINED_BYTES: Final = 4 * MAX_EVENT_BYTES
_LINE_BITS: Final = 32
_MAX_LINES: Final = 1 << _LINE_BITS


@dataclass(frozen=True)
class RawObject:
    """One raw event object, decompressed, with its place in the run.

    `history` marks an object of imported history (`recs import`), whose events may be of
    any age; every other object holds live events, which must not predate 2000.
    """

    key: str
    ordinal: int
    body: bytes
    history: bool = False

    @property
    def earliest(self) -> datetime:
        """The earliest `ts` the contract accepts in this object."""
        return EARLIEST_HISTORY_TS if self.history else EARLIEST_TS


@dataclass(frozen=True)
class Rejected:
    """A record the contract refused, with where it came from and why."""

    source: str
    line: int
    problems: tuple[Problem, ...]
    record: bytes

    def to_json(self) -> dict[str, Any]:
        """The quarantine line: source, line, reasons and the record as it was, up to
        `MAX_QUARANTINED_BYTES` (a longer one says its size; the raw zone keeps it whole)."""
        found = {
            "source": self.source,
            "line": self.line,
            "reason": "; ".join(p.message for p in self.problems),
            "problems": [{"field": p.field, "message": p.message} for p in self.problems],
            "record": self.record[:MAX_QUARANTINED_BYTES].decode("utf-8", errors="replace"),
        }
        if len(self.record) > MAX_QUARANTINED_BYTES:
            found["record_bytes"] = len(self.record)
        return found


@dataclass
class ReadResult:
    """What reading some raw objects gave: curated rows, refused records and line counts."""

    table: pa.Table
    rejected: list[Rejected] = field(default_factory=list)
    lines: int = 0


#: Compressed bytes fed to zlib at a time, so that damage keeps what came before it.
_GZIP_CHUNK: Final = 1 << 20


def decompress(key: str, body: bytes) -> tuple[bytes, Problem | None]:
    """A raw object's JSON lines, told gzip or plain by content (ending with a newline), and
    what could not be read of it, if anything.

    It reads what `gzip -dc` reads: members one after another, as `cat a.gz b.gz` makes;
    zero bytes after the last one are padding; other bytes after it, a stream cut short or
    damaged keep the lines before them, and are the problem. An empty object named `.gz`
    (an upload cut short) is a problem too, rather than an object of no events.
    """
    problem = None
    if body[:2] == GZIP_MAGIC:
        parts, problem = _gunzip(key, body)
        body = b"".join(parts)
    elif not body and key.endswith(".gz"):
        problem = Problem("body", f"Object {key} is empty (0 bytes) although named .gz")
    if problem is not None and not body:
        problem = Problem("body", f"{problem.message}; nothing read from it")
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return body, problem


def _gunzip(key: str, body: bytes) -> tuple[list[bytes], Problem | None]:
    """The decompressed parts of every gzip member, and what stopped the reading early."""
    parts: list[bytes] = []
    position = 0
    while True:
        # wbits 47: a gzip header and trailer (the CRC is checked) around one member.
        decoder = zlib.decompressobj(47)
        end = position
        try:
            while not decoder.eof and end < len(body):
                chunk = body[end : end + _GZIP_CHUNK]
                end += len(chunk)
                parts.append(decoder.decompress(chunk))
        except zlib.error as exc:
            return parts, Problem("body", f"Object {key} is not valid gzip ({exc})")
        if not decoder.eof:
            return parts, Problem(
                "body", f"Object {key} is not valid gzip (it ends before its gzip stream does)"
            )
        position = end - len(decoder.unused_data)
        rest = body[position:].lstrip(b"\0")
        if not rest:
            return parts, None
        position = len(body) - len(rest)
        if rest[:2] != GZIP_MAGIC:
            return parts, Problem(
                "body",
                f"Object {key} has {len(rest):,} bytes after its gzip data that are not gzip; "
                "they were not read",
            )


def _clean_lines(body: bytes) -> int | None:
    """The line count of an object the fast path may take whole, else None.

    It may when every line is one short JSON object.

    That is: every line starts with `{` (no blank lines, no stray text, no object split over
    lines), no line is over the size limit, and no `null` appears. One pass with numpy, in
    slices, so memory stays flat whatever the object's size.
    """
    if not body or body[:1] != b"{" or b"null" in body:
        return None
    view = np.frombuffer(body, dtype=np.uint8)
    previous, lines = -1, 0
    for start in range(0, view.size, _SCAN_BYTES):
        ends = np.flatnonzero(view[start : start + _SCAN_BYTES] == _NEWLINE) + start
        if not ends.size:
            continue
        if int(np.diff(ends, prepend=previous).max()) - 1 > MAX_EVENT_BYTES:
            return None
        starts = ends[:-1] + 1 if ends[-1] == view.size - 1 else ends + 1
        if starts.size and not bool((view[starts] == _BRACE).all()):
            return None
        previous, lines = int(ends[-1]), lines + ends.size
    return lines if previous == view.size - 1 and lines < _MAX_LINES else None


def _parse(body: bytes) -> pa.Table | None:
    # 16 MiB blocks parse fastest here (measured); smaller bodies split in two for both cores.
    block = max(1 << 20, min(len(body) // 2 + 1, 1 << 24))
    options = pj.ReadOptions(block_size=block)
    for parser in _PARSERS:
        try:
            return pj.read_json(pa.py_buffer(body), parse_options=parser, read_options=options)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            continue
    return None


def _id_ok(column: pa.ChunkedArray, *, nullable: bool = False) -> pa.ChunkedArray:
    """The contract's id rule for ASCII ids: 1-256 printable characters, not all blank."""
    length = pc.binary_length(column)
    ok = pc.and_(
        pc.and_(pc.ascii_is_printable(column), pc.invert(pc.utf8_is_space(column))),
        pc.and_(pc.greater_equal(length, 1), pc.less_equal(length, MAX_ID_LENGTH)),
    )
    return pc.fill_null(ok, nullable)


def _coalesce(table: pa.Table) -> tuple[dict[str, pa.ChunkedArray], pa.ChunkedArray]:
    """One column per field, and where both spellings of a field were given."""
    columns = {}
    both = pa.chunked_array([np.zeros(table.num_rows, dtype=bool)])
    for name, alias in _ALIASES:
        lake = table[name]
        if alias not in table.column_names:
            columns[name] = lake
            continue
        other = table[alias]
        both = pc.or_(both, pc.and_(pc.is_valid(lake), pc.is_valid(other)))
        columns[name] = pc.coalesce(lake, other)
    return columns, both


def _check(
    table: pa.Table, now: datetime, earliest_ts: datetime
) -> tuple[np.ndarray, pa.Table] | None:
    """Rows that pass every rule, and those rows as curated columns; None if a cast failed."""
    columns, both = _coalesce(table)
    ts_text = table["ts"]
    ts_ok = pc.fill_null(pc.match_substring_regex(ts_text, _TS_PATTERN), False)
    safe_text = pc.if_else(ts_ok, ts_text, "2000-01-01T00:00:00Z")
    try:
        # A date that passes the pattern but does not exist (Feb 30) fails the whole cast.
        ts_us = pc.cast(safe_text, pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:
        return None
    latest = pa.scalar(now + MAX_CLOCK_SKEW, pa.timestamp("us", tz="UTC"))
    earliest = pa.scalar(earliest_ts, pa.timestamp("us", tz="UTC"))
    price, quantity = table["price"], table["quantity"]
    rules = [
        pc.invert(both),
        _id_ok(columns["event_id"]),
        _id_ok(columns["user_id"]),
        _id_ok(columns["item_id"]),
        _id_ok(columns["session_id"], nullable=True),
        _id_ok(columns["recommendation_id"], nullable=True),
        _id_ok(columns["shop_event_type"], nullable=True),
        pc.fill_null(pc.is_in(columns["event_type"], value_set=pa.array(EVENT_TYPES)), False),
        ts_ok,
        pc.and_(pc.greater_equal(ts_us, earliest), pc.less_equal(ts_us, latest)),
        pc.fill_null(pc.and_(pc.is_finite(price), pc.greater_equal(price, 0.0)), True),
        pc.fill_null(pc.and_(pc.greater_equal(quantity, 1), pc.less_equal(quantity, 10_000)), True),
    ]
    ok = rules[0]
    for rule in rules[1:]:
        ok = pc.and_(ok, rule)
    curated = pa.table(
        {
            "event_id": columns["event_id"],
            "user_id": columns["user_id"],
            "item_id": columns["item_id"],
            "event_type": columns["event_type"],
            "ts": pc.cast(ts_us, pa.timestamp("ms", tz="UTC"), safe=False),
            "session_id": columns["session_id"],
            "price": price,
            "quantity": pc.cast(pc.if_else(pc.fill_null(ok, False), quantity, None), pa.int32()),
            "properties": pa.nulls(table.num_rows, pa.string()),
            "recommendation_id": columns["recommendation_id"],
            "shop_event_type": columns["shop_event_type"],
        }
    )
    return np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool), curated


def _seq(ordinal: int, line_numbers: np.ndarray) -> np.ndarray:
    return (np.int64(ordinal) << _LINE_BITS) | line_numbers.astype(np.int64)


def event_rows(events: Sequence[Event], seqs: Sequence[int]) -> pa.Table:
    """Curated rows (plus `_seq`) for events the contract accepted one by one."""
    records: dict[str, list[Any]] = {name: [] for name in INTERACTIONS_TABLE.names}
    for event in events:
        records["event_id"].append(event.event_id)
        records["user_id"].append(event.user_id)
        records["item_id"].append(event.item_id)
        records["event_type"].append(event.event_type)
        records["ts"].append(epoch_ms(event.ts))
        records["session_id"].append(event.session_id)
        records["price"].append(event.price)
        records["quantity"].append(event.quantity)
        records["properties"].append(
            None
            if event.properties is None
            else json.dumps(event.properties, sort_keys=True, separators=(",", ":"))
        )
        records["recommendation_id"].append(event.recommendation_id)
        records["shop_event_type"].append(event.shop_event_type)
    records["_seq"] = list(seqs)
    return pa.table(records, schema=_ROWS)


class _Collector:
    """Gathers curated tables and refusals across the paths, in line order per object."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.tables: list[pa.Table] = []
        self.rejected: list[Rejected] = []
        self.lines = 0
        self._slow_events: list[Event] = []
        self._slow_seqs: list[int] = []

    def slow(self, obj: RawObject, line_number: int, line: bytes) -> None:
        try:
            event = parse_stored_event(line, now=self.now, history=obj.history)
        except InvalidEvent as exc:
            self.rejected.append(Rejected(obj.key, line_number, tuple(exc.problems), line))
            return
        self._slow_events.append(event)
        self._slow_seqs.append(int(_seq(obj.ordinal, np.array([line_number]))[0]))

    def fast(
        self, objects: Sequence[RawObject], line_numbers: list[np.ndarray], parsed: pa.Table
    ) -> bool:
        """Check parsed rows; send the rows that fail a rule to the contract. False: undo.

        The objects share one `history` flag, so one set of rules applies to every row.
        """
        checked = _check(parsed, self.now, objects[0].earliest)
        if checked is None:
            return False
        ok, curated = checked
        seqs = np.concatenate(
            [_seq(obj.ordinal, lines) for obj, lines in zip(objects, line_numbers, strict=True)]
        )
        curated = curated.append_column("_seq", pa.array(seqs, pa.int64()))
        self.tables.append(curated.filter(pa.array(ok)))
        bad = np.flatnonzero(~ok)
        if bad.size:
            bounds = np.cumsum([0, *(len(lines) for lines in line_numbers)])
            split: dict[int, list[bytes]] = {}
            for row in bad.tolist():
                index = int(np.searchsorted(bounds, row, side="right")) - 1
                obj = objects[index]
                number = int(line_numbers[index][row - bounds[index]])
                lines = split.setdefault(index, obj.body.split(b"\n"))
                self.slow(obj, number, lines[number - 1])
        return True

    def result(self) -> ReadResult:
        if self._slow_events:
            self.tables.append(event_rows(self._slow_events, self._slow_seqs))
        if self.tables:
            table = pa.concat_tables(self.tables)
            if len(self.tables) > 1:
                table = table.take(pc.sort_indices(table["_seq"]))
        else:
            table = event_rows([], [])
        self.rejected.sort(key=lambda r: (r.source, r.line))
        return ReadResult(table=table, rejected=self.rejected, lines=self.lines)


def _take_apart(obj: RawObject, collector: _Collector) -> None:
    """Parse an object chunk by chunk, sending odd lines and failed chunks to the contract."""
    chunk: list[bytes] = []
    numbers: list[int] = []

    def flush() -> None:
        if not chunk:
            return
        body = b"\n".join(chunk) + b"\n"
        parsed = _parse(body)
        lines = np.array(numbers, dtype=np.int64)
        if (
            parsed is None
            or parsed.num_rows != len(chunk)
            or not collector.fast([obj], [lines], parsed)
        ):
            for number, line in zip(numbers, chunk, strict=True):
                collector.slow(obj, number, line)
        chunk.clear()
        numbers.clear()

    for number, line in enumerate(obj.body.split(b"\n"), start=1):
        if not line.strip():
            continue
        collector.lines += 1
        if line[:1] != b"{" or len(line) > MAX_EVENT_BYTES or any(m in line for m in _SLOW_MARKERS):
            collector.slow(obj, number, line)
            continue
        chunk.append(line)
        numbers.append(number)
        if len(chunk) >= _CHUNK_LINES:
            flush()
    flush()


def read_events(objects: Sequence[RawObject], *, now: datetime) -> ReadResult:
    """Validate the lines of some decompressed raw objects against the event contract.

    Returns the accepted events as curated columns plus `_seq` (the object's ordinal and the
    line number, so the first copy of a duplicate can be kept), and every refused line.
    """
    collector = _Collector(now)
    shapes = {o.key: _clean_lines(o.body) for o in objects}
    rest = [o for o in objects if shapes[o.key] is None]
    for history in (False, True):  # live and imported objects follow different `ts` rules
        clean = [
            (o, n) for o in objects if o.history is history and (n := shapes[o.key]) is not None
        ]
        if clean and not _read_together(clean, collector):
            rest += [o for o, _ in clean]
    rest.sort(key=lambda o: o.ordinal)
    for obj in rest:
        lines = shapes[obj.key]
        if lines is not None and _read_together([(obj, lines)], collector):
            continue
        _take_apart(obj, collector)
    return collector.result()


def _read_together(clean: Sequence[tuple[RawObject, int]], collector: _Collector) -> bool:
    """The fast path over objects whose every line is one JSON object: one parse for all."""
    objects = [o for o, _ in clean]
    counts = [n for _, n in clean]
    parsed = _parse(b"".join(o.body for o in objects))
    if parsed is None or parsed.num_rows != sum(counts):
        return False
    line_numbers = [np.arange(1, n + 1, dtype=np.int64) for n in counts]
    before = len(collector.tables)
    if not collector.fast(objects, line_numbers, parsed):
        del collector.tables[before:]
        return False
    collector.lines += sum(counts)
    return True
