"""An interactions file into the raw zone, in two passes over a spool on local disk.

The first pass checks every row and spools the accepted events as Parquet (line, time, the
shop's own event name, and the event's canonical JSON without its id) and the refusals as
gzip JSON lines. Most rows take the vectorized reader (`ingestion.fast_rows`); a row it
cannot vouch for (a quote, a character JSON escapes, a value some rule refuses) is read here
one at a time, through the contract, so every message is the contract's own. Nothing is
written to the lake in this pass.

The second pass numbers identical rows (DuckDB, out of core), gives each event its id, and
writes the raw objects. An event's id is a uuid5 of its content and of how many identical
rows came before it in the file, so an overlapping export adds only its new rows.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import operator
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.contract import EVENT_TYPES, epoch_ms, parse_event
from common.errors import InvalidRecord, Problem
from common.lake import Lake
from common.layout import QUARANTINE_IMPORT, import_taken
from ingestion.csv_files import CsvFile, number, parse_timestamp
from ingestion.import_options import ImportOptions, ImportReport, event_type_key
from ingestion.known import ids_in_lake
from ingestion.raw import HISTORY_STREAM, HOUR_MS, RawEventWriter, join_lines

ROW_NAMESPACE: Final = uuid.UUID("3c2b1a7e-2d4f-4b5e-8f61-7a9c0d1e2f3a")
_EVENT_FIELDS: Final = {"SESSION_ID": "session_id", "PRICE": "price", "QUANTITY": "quantity"}
_REJECTS_PER_PART: Final = 100_000
#: Accepted rows per spool file from the row-at-a-time reader.
_SPOOL_ROWS: Final = 200_000
SPOOL_SCHEMA: Final = pa.schema(
    [
        ("line", pa.int64()),
        ("ts_ms", pa.int64()),
        #: The shop's own event name as a JSON string, or null where it is ours.
        ("shop", pa.string()),
        ("content", pa.string()),
    ]
)
_DIGEST: Final = operator.methodcaller("digest")
#: A UUID's 32 hex digits in groups (start, end, where the group goes in its 36 characters).
_GROUPS: Final = ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24))


@dataclass
class Spool:
    """The first pass's output: accepted events as Parquet files, refusals as gzip lines."""

    folder: Path
    #: The hours (epoch ms) the accepted events fall in.
    hours: set[int] = field(default_factory=set)
    #: The hash of all accepted rows in file order, naming the raw objects.
    content: Any = field(default_factory=hashlib.sha256)
    parts: int = 0

    @property
    def rejects(self) -> Path:
        """One quarantine record per refused row, gzip."""
        return self.folder / "rejects.jsonl.gz"

    def add(self, table: pa.Table) -> None:
        """Spool accepted rows (`SPOOL_SCHEMA`, in file order)."""
        if table.num_rows == 0:
            return
        pq.write_table(table, self.folder / f"spool-{self.parts:06d}.parquet", compression="none")
        self.parts += 1
        ts_ms = table["ts_ms"].to_numpy()
        self.hours.update(np.unique(ts_ms - ts_ms % HOUR_MS).tolist())
        joined = pc.binary_join_element_wise(
            pc.fill_null(table["shop"], ""), "\t", table["content"], "\n", ""
        )
        self.content.update(_string_bytes(joined))

    def ordered(self) -> Iterator[pa.Table]:
        """Accepted rows in file order, each with `rank`: how many identical rows (the same
        content) came before it in the file."""
        if self.parts == 0:
            return
        # DuckDB finds the repeated rows (few, mostly) out of core; the spool files are read
        # back in order for the rest, so nothing is sorted.
        con = duckdb.connect(
            config={"temp_directory": str(self.folder / "duckdb"), "memory_limit": "1GB"}
        )
        try:
            repeated = con.sql(
                "SELECT line, row_number() OVER (PARTITION BY content ORDER BY line) - 1 AS rank "
                f"FROM read_parquet('{self.folder}/spool-*.parquet') QUALIFY rank > 0 "
                "ORDER BY line"
            ).fetchnumpy()
        finally:
            con.close()
        lines = np.asarray(repeated["line"], dtype=np.int64)
        ranks = np.asarray(repeated["rank"], dtype=np.int64)
        for part in range(self.parts):
            table = pq.read_table(self.folder / f"spool-{part:06d}.parquet")
            line = table["line"].to_numpy()
            rank = np.zeros(len(line), dtype=np.int64)
            at = np.searchsorted(lines, line)
            found = at < len(lines)
            found[found] = lines[at[found]] == line[found]
            rank[found] = ranks[at[found]]
            yield table.append_column("rank", pa.array(rank))


def _string_bytes(strings: pa.Array | pa.ChunkedArray) -> bytes:
    """The characters of every string, one after the other."""
    if isinstance(strings, pa.ChunkedArray):
        return b"".join(_string_bytes(chunk) for chunk in strings.chunks)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)
    start, end = offsets[strings.offset], offsets[strings.offset + len(strings)]
    return strings.buffers()[2][start:end].to_pybytes() if end > start else b""


def interaction(
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


class RowReader:
    """Reads rows one at a time through the contract: accepted ones are kept for the spool,
    refused ones are counted and written to the refusals file."""

    def __init__(
        self,
        source: CsvFile,
        options: ImportOptions,
        report: ImportReport,
        now: datetime,
        rejects: gzip.GzipFile,
    ) -> None:
        self.source = source
        self.options = options
        self.mapping = options.mapping()
        self.report = report
        self.now = now
        self.rejects = rejects
        self.columns: dict[str, list[Any]] = {name: [] for name in SPOOL_SCHEMA.names}

    def __len__(self) -> int:
        return len(self.columns["line"])

    def take(self, line: int, row: dict[str, str] | list[str]) -> None:
        """Check one data row; keep it or refuse it."""
        report = self.report
        report.rows += 1
        try:
            content, shop_type, ts_ms, rescaled = interaction(
                self.source.checked(row), self.mapping, self.options, report, self.now
            )
        except InvalidRecord as exc:
            report.refuse(line, str(exc))
            reject = {"source": self.source.name, "line": line, "reason": str(exc), "row": row}
            self.rejects.write(json.dumps(reject, ensure_ascii=False).encode() + b"\n")
            return
        report.accepted += 1
        report.rescaled += rescaled
        for name, value in (
            ("line", line),
            ("ts_ms", ts_ms),
            ("shop", None if shop_type is None else json.dumps(shop_type)),
            ("content", content),
        ):
            self.columns[name].append(value)

    def take_text(self, line: int, text: str) -> None:
        """Check one line of the file, read as CSV on its own."""
        values = next(csv.reader([text]), [])
        if values and any(v.strip() for v in values):
            header = self.source.header
            if len(values) == len(header):
                self.take(line, dict(zip(header, values, strict=True)))
            else:
                self.take(line, values)

    def table(self) -> pa.Table:
        """The rows kept since the last call, as a spool table."""
        table = pa.table(self.columns, schema=SPOOL_SCHEMA)
        self.columns = {name: [] for name in SPOOL_SCHEMA.names}
        return table


def read_rows(
    source: CsvFile,
    options: ImportOptions,
    spool: Spool,
    report: ImportReport,
    now: datetime,
    progress: Callable[[int], None] | None,
) -> None:
    """The first pass, one row at a time: for a file the vectorized reader gave up on."""
    with gzip.open(spool.rejects, "wb", compresslevel=1) as rejects:
        reader = RowReader(source, options, report, now, rejects)
        shown = 0
        for line, row in source.records():
            reader.take(line, row)
            if len(reader) >= _SPOOL_ROWS:
                spool.add(reader.table())
            if progress is not None and report.rows - shown >= 10_000:
                progress(report.rows - shown)
                shown = report.rows
        spool.add(reader.table())
    if progress is not None:
        progress(report.rows - shown)


def event_ids(content: pa.Array, rank: pa.Array) -> tuple[pa.Array, npt.NDArray[np.uint64]]:
    """`uuid5(ROW_NAMESPACE, f"{content}#{rank}")` of each row as text, and the first 64 bits
    of each (`UUID.int >> 64`)."""
    binary = pa.binary()
    names = pc.binary_join_element_wise(
        pa.scalar(ROW_NAMESPACE.bytes, binary),
        content.cast(binary),
        pa.scalar(b"#", binary),
        pc.cast(rank, pa.string()).cast(binary),
        pa.scalar(b"", binary),
    )
    # map over C callables: no Python frame per row. A SHA-1 digest is 20 bytes; a UUID
    # takes the first 16.
    digests = b"".join(map(_DIGEST, map(hashlib.sha1, names.to_pylist())))
    raw = np.frombuffer(digests, dtype=np.uint8).reshape(-1, 20)[:, :16].copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50  # version 5
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    n = len(raw)
    digits = np.frombuffer(raw.tobytes().hex().encode(), dtype=np.uint8).reshape(n, 32)
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    for start, end, at in _GROUPS:
        text[:, at : at + end - start] = digits[:, start:end]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    ids = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))
    keys = raw[:, :8].copy().view(">u8").ravel().astype(np.uint64)
    return ids, keys


def _by_hour(batch: pa.Table, ids: pa.Array) -> list[tuple[int, bytes, int]]:
    """A batch's raw lines, joined per hour (in file order within each hour)."""
    shop = pc.fill_null(
        pc.binary_join_element_wise('"shop_event_type":', batch["shop"], ",", ""), ""
    )
    content = pc.utf8_slice_codeunits(batch["content"], 1)
    lines = pc.binary_join_element_wise('{"event_id":"', ids, '",', shop, content, "\n", "")
    ts_ms = batch["ts_ms"].to_numpy()
    hours = ts_ms - ts_ms % HOUR_MS
    order = np.argsort(hours, kind="stable")
    lines, hours = lines.take(pa.array(order)), hours[order]
    cuts = np.flatnonzero(np.diff(hours)) + 1
    return [
        (int(hours[start]), _string_bytes(lines[start:end]), end - start)
        for start, end in zip(
            np.r_[0, cuts].tolist(), np.r_[cuts, len(hours)].tolist(), strict=True
        )
    ]


def write_interactions(lake: Lake, spool: Spool, report: ImportReport, run: str) -> None:
    """The second pass: spooled events get their ids and land; refusals go to quarantine.
    Ids are hashed on this thread while the batch before is joined into lines on another
    (Arrow lets go of the GIL) and compressed on the writer's."""
    existing = ids_in_lake(lake, spool.hours)
    with (
        RawEventWriter(lake, stream=HISTORY_STREAM, run_key=spool.content.hexdigest()) as writer,
        ThreadPoolExecutor(1, thread_name_prefix="import-lines") as pool,
    ):
        pending: Future[list[tuple[int, bytes, int]]] | None = None
        for batch in spool.ordered():
            ranks = batch["rank"]
            report.repeats += int(pc.sum(pc.greater(ranks, 0)).as_py() or 0)
            ids, keys = event_ids(batch["content"], ranks)
            report.new += int(np.count_nonzero(~np.isin(keys, existing)))
            if pending is not None:
                for hour, body, count in pending.result():
                    writer.add_bytes(hour, body, count)
            pending = pool.submit(_by_hour, batch, ids)
        if pending is not None:
            for hour, body, count in pending.result():
                writer.add_bytes(hour, body, count)
    report.objects = writer.report.objects
    if report.rejected:
        prefix = f"{QUARANTINE_IMPORT}/{run}/interactions"
        with gzip.open(spool.rejects, "rb") as rejects:
            quarantine(lake, prefix, (line.rstrip(b"\n").decode() for line in rejects))
        report.quarantine = prefix


#: Earlier import runs whose refusals an import looks through for rows it has now taken, and
#: the most refused rows of one run it reads again (each goes through the contract).
_TAKEN_RUNS: Final = 20
_TAKEN_ROWS: Final = 200_000


def mark_taken(
    lake: Lake, spool: Spool, options: ImportOptions, now: datetime, run: str
) -> dict[str, int]:
    """Mark the rows earlier imports refused that this one took in: read again with this
    run's options (a `--map` added since, say), a refused row whose event is among this
    run's is added to `quarantine/import/<that run>/interactions/taken.json`, which keeps
    the line of every row any later run took. Returns {run: rows newly taken}."""
    runs = sorted(
        {key.split("/")[2] for key in lake.list(f"{QUARANTINE_IMPORT}/") if "/interactions/" in key}
        - {run}
    )[-_TAKEN_RUNS:]
    if spool.parts == 0 or not runs:
        return {}
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW taken AS SELECT content FROM read_parquet('{spool.folder}/spool-*.parquet')"
    )
    marked = {}
    try:
        for earlier in runs:
            prefix = f"{QUARANTINE_IMPORT}/{earlier}/interactions"
            before = _taken_lines(lake, earlier)
            refused = _refused(lake, prefix, options, now, before)
            if not refused["line"]:
                continue
            con.register("refused", pa.table(refused))
            found = con.execute(
                "SELECT line FROM refused WHERE content IN (SELECT content FROM taken)"
            ).fetchnumpy()["line"]
            con.unregister("refused")
            lines = sorted(before | {int(n) for n in found})
            if len(lines) > len(before):
                record = {"rows": len(lines), "lines": lines, "last_by": run}
                lake.write_bytes(import_taken(earlier), json.dumps(record).encode())
                marked[earlier] = len(lines) - len(before)
    finally:
        con.close()
    return marked


def _taken_lines(lake: Lake, run: str) -> set[int]:
    try:
        found = json.loads(lake.read_bytes(import_taken(run)))
    except (FileNotFoundError, json.JSONDecodeError):
        return set()
    return {int(n) for n in found.get("lines", [])} if isinstance(found, dict) else set()


def _refused(
    lake: Lake, prefix: str, options: ImportOptions, now: datetime, taken: set[int]
) -> dict[str, list[Any]]:
    """An import run's refused rows not yet taken, as this run would read them: the line
    and the event's content, for those it accepts now (at most `_TAKEN_ROWS`)."""
    mapping = options.mapping()
    scratch = ImportReport(source="", kind="interactions")
    rows: dict[str, list[Any]] = {"line": [], "content": []}
    for key in lake.list(f"{prefix}/"):
        if not key.endswith(".jsonl"):
            continue
        for text in lake.read_bytes(key).splitlines():
            refusal = json.loads(text)
            row, line = refusal.get("row"), refusal.get("line")
            if not isinstance(row, dict) or line in taken:
                continue
            try:
                rows["content"].append(interaction(row, mapping, options, scratch, now)[0])
            except (InvalidRecord, KeyError):
                continue
            rows["line"].append(int(line))
            if len(rows["line"]) >= _TAKEN_ROWS:
                return rows
    return rows


def quarantine(lake: Lake, prefix: str, lines: Iterator[str]) -> None:
    """Refusals, one JSON line each, in parts under `prefix`."""
    part: list[str] = []
    count = 0
    for line in lines:
        part.append(line)
        if len(part) >= _REJECTS_PER_PART:
            count += 1
            lake.write_bytes(f"{prefix}/rejected-{count:05d}.jsonl", join_lines(part))
            part = []
    if part:
        lake.write_bytes(f"{prefix}/rejected-{count + 1:05d}.jsonl", join_lines(part))
