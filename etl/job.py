"""The curation job: raw zone in, curated Parquet, quarantine and a bookmark out.

`run_etl` reads the raw event objects it has not read before (or every object in a
`--since/--until` window), checks each line against the event contract, drops copies of
events already curated, and writes one Parquet file per event date and batch. Catalog dumps
are merged into the items and users tables. Everything is staged and then committed with
one write of the bookmark (see `etl.state`), so a run killed at any point leaves either the
old curated zone or the new one, and the next run finishes or redoes the work.

Memory stays bounded by `batch_bytes` of decompressed JSON plus the event ids of the dates a
batch touches; events never become Python objects on the fast path.
"""

from __future__ import annotations

import io
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.contract import format_ts
from common.lake import Lake
from common.layout import QUARANTINE_CATALOG, QUARANTINE_EVENTS, RAW_EVENTS
from etl import state
from etl.catalog import complete_dumps, curate_catalog, curated_key, parquet_bytes
from etl.events import RawObject, ReadResult, Rejected, decompress, read_events
from etl.glue import GlueCatalog
from etl.schema import INTERACTIONS_TABLE, ITEMS_TABLE, PARQUET_OPTIONS, USERS_TABLE
from etl.schema import partition_prefix as interactions_partition
from etl.state import Bookmark
from ingestion.raw import RAW_EVENT_KEY, is_history

#: Decompressed JSON per batch, about 500k events. Smaller batches pipeline better with the
#: writer threads; 96 MB ran fastest on 2 cores (48: 10% slower, 192: 8% slower, more memory).
DEFAULT_BATCH_BYTES: Final = 96 << 20
#: Raw objects read and decompressed ahead of the one being parsed.
_PREFETCH: Final = 6
_QUARANTINE_LINES: Final = 10_000
_WRITES_IN_FLIGHT: Final = 8
_EPOCH_DAY: Final = date(1970, 1, 1)
#: How long an S3 lock of a run that died blocks the next one. Longer than any run takes;
#: shorter than the day between nightly runs.
ETL_LEASE_S: Final = 6 * 3600.0


@dataclass
class RunReport:
    """What one ETL run did. For event lines, `read == curated + quarantined + duplicates`.

    An object that cannot be decompressed at all counts in `unreadable_objects`, not in
    `read`; its quarantine entry has line 0. An object read only in part (damaged or cut
    short gzip, bytes after its gzip data) counts in `damaged_objects`: its lines before the
    damage are read, and the damage has a quarantine entry with line 0.
    """

    run_id: str | None = None
    seq: int = 0
    raw_objects: int = 0
    read: int = 0
    curated: int = 0
    quarantined: int = 0
    duplicates: int = 0
    catalog_dumps: list[str] = field(default_factory=list)
    catalog_read: int = 0
    catalog_quarantined: int = 0
    items: int | None = None
    users: int | None = None
    event_dates: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    quarantine_files: list[str] = field(default_factory=list)
    unreadable_objects: int = 0
    damaged_objects: int = 0
    finished_previous: int = 0
    skipped_keys: int = 0
    #: Temporary files killed writers had left in the lake, removed at the start of the run.
    abandoned_files: int = 0
    seconds: float = 0.0

    @property
    def nothing_new(self) -> bool:
        """True when the run found no new raw objects and no new catalog dump."""
        return self.run_id is None

    def to_json(self) -> bytes:
        """The run record kept under `_state/etl/runs/`."""
        return json.dumps(asdict(self), indent=1).encode()


def _hour_of(key: str) -> datetime | None:
    match = RAW_EVENT_KEY.match(key)
    if not match:
        return None
    year, month, day, hour = (int(match[name]) for name in ("year", "month", "day", "hour"))
    return datetime(year, month, day, hour, tzinfo=UTC)


def _in_window(hour: datetime, since: date | None, until: date | None) -> bool:
    if since is not None and hour < datetime.combine(since, datetime.min.time(), UTC):
        return False
    return not (until is not None and hour >= datetime.combine(until, datetime.min.time(), UTC))


def _prefetch(
    lake: Lake, keys: list[str], pool: ThreadPoolExecutor
) -> Iterator[list[RawObject | Rejected]]:
    """Raw objects in key order, read and decompressed a few ahead on the pool: each what it
    held (if anything), then what of it could not be read (if anything)."""

    def fetch(ordinal: int, key: str) -> list[RawObject | Rejected]:
        body, problem = decompress(key, lake.read_bytes(key))
        found: list[RawObject | Rejected] = []
        if body:
            found.append(RawObject(key, ordinal, body, history=is_history(key)))
        if problem is not None:
            found.append(Rejected(key, 0, (problem,), b""))
        return found

    pending: deque[Future[list[RawObject | Rejected]]] = deque()
    upcoming = iter(enumerate(keys))
    for ordinal, key in upcoming:
        pending.append(pool.submit(fetch, ordinal, key))
        if len(pending) >= _PREFETCH:
            break
    while pending:
        yield pending.popleft().result()
        for ordinal, key in upcoming:
            pending.append(pool.submit(fetch, ordinal, key))
            break


class _Run:
    """One run's staged output and counts."""

    def __init__(self, lake: Lake, bookmark: Bookmark, run_id: str, now: datetime) -> None:
        self.lake = lake
        self.bookmark = bookmark
        self.run_id = run_id
        self.now = now
        self.staging = state.staging_prefix(run_id)
        self.report = RunReport(run_id=run_id, seq=bookmark.seq + 1)
        self.new_files: dict[str, dict[str, int]] = {}
        self.publish: list[tuple[str, str]] = []
        self._quarantine: dict[str, list[bytes]] = {QUARANTINE_EVENTS: [], QUARANTINE_CATALOG: []}
        self._batches = 0
        self.duck = duckdb.connect()
        self._writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="etl-write")
        self._writes: deque[Future[None]] = deque()

    def stage(self, key: str, body: bytes) -> None:
        staged = self.staging + key
        self.lake.write_bytes(staged, body)
        self.publish.append((staged, key))

    def stage_parquet(self, key: str, part: pa.Table) -> None:
        """Encode and stage one interactions file on the writer pool, overlapping the next
        batch's parsing; at most a few writes are in flight, so memory stays bounded."""
        staged = self.staging + key
        self.publish.append((staged, key))

        def write() -> None:
            sink = io.BytesIO()
            pq.write_table(
                part, sink, use_dictionary=INTERACTIONS_TABLE.dictionary_columns, **PARQUET_OPTIONS
            )
            self.lake.write_bytes(staged, sink.getvalue())

        self._writes.append(self._writer.submit(write))
        while len(self._writes) > _WRITES_IN_FLIGHT:
            self._writes.popleft().result()

    def drain(self) -> None:
        """Wait for every staged write; raise the first failure."""
        while self._writes:
            self._writes.popleft().result()

    def close(self) -> None:
        self._writer.shutdown(wait=True, cancel_futures=True)
        self.duck.close()

    def _existing_ids(self, dates: Iterable[str]) -> pa.Array | None:
        if any(day in self.new_files for day in dates):
            self.drain()  # this run's own files of these dates must be on the lake to be read
        arrays = []
        for day in dates:
            keys = [*self.bookmark.files(day)]
            keys += [self.staging + k for k in sorted(self.new_files.get(day, {}))]
            for key in keys:
                body = self.lake.read_bytes(key)
                arrays.append(pq.read_table(pa.BufferReader(body), columns=["event_id"])[0])
        if not arrays:
            return None
        return pa.chunked_array([c for a in arrays for c in a.chunks], pa.string())

    def add_events(self, result: ReadResult) -> None:
        """Dedupe a batch of read events and stage one file per event date."""
        for rejected in result.rejected:
            self.quarantine(rejected, QUARANTINE_EVENTS)
        self.report.read += result.lines
        table = result.table
        if table.num_rows == 0:
            return
        # DuckDB hashes the ids on both cores, about five times as fast as pc.unique here.
        self.duck.register("batch", table.select(["event_id", "_seq"]))
        try:
            [(copies,)] = self.duck.execute(
                "SELECT count(*) - count(DISTINCT event_id) FROM batch"
            ).fetchall()
            if copies:
                # Keep the first copy: the lowest (object, line).
                firsts = self.duck.sql(
                    "SELECT min(_seq) AS first FROM batch GROUP BY event_id"
                ).to_arrow_table()
                table = table.filter(pc.is_in(table["_seq"], value_set=firsts["first"]))
        finally:
            self.duck.unregister("batch")
        days = pc.cast(table["ts"], pa.date32())
        touched = sorted(d.isoformat() for d in pc.unique(days).to_pylist())
        existing = self._existing_ids(touched)
        if existing is not None:
            fresh = pc.invert(pc.is_in(table["event_id"], value_set=existing))
            table, days = table.filter(fresh), days.filter(fresh)
        self.report.duplicates += result.table.num_rows - table.num_rows
        self.report.curated += table.num_rows
        if table.num_rows == 0:
            return
        table = table.drop_columns(["_seq"]).cast(INTERACTIONS_TABLE.arrow_schema)
        day_numbers = days.to_numpy().astype("int64")
        if not bool((np.diff(day_numbers) >= 0).all()):
            # Late events: group by date. Raw objects come in hour order, so usually not needed.
            order = pc.sort_indices(days)
            table, day_numbers = table.take(order), day_numbers[order.to_numpy()]
        bounds = np.flatnonzero(np.diff(day_numbers)) + 1
        for start, stop in zip(
            [0, *bounds.tolist()], [*bounds.tolist(), table.num_rows], strict=True
        ):
            day = (_EPOCH_DAY + timedelta(days=int(day_numbers[start]))).isoformat()
            name = f"part-{self.run_id}-{self._batches:05d}.parquet"
            key = f"{interactions_partition(day)}/{name}"
            self.stage_parquet(key, table.slice(start, stop - start))
            self.new_files.setdefault(day, {})[key] = stop - start
        self._batches += 1

    def quarantine(self, rejected: Rejected, zone: str) -> None:
        """Keep a refused record, its source, line and reasons, under `zone/<run>/`."""
        line = rejected.to_json() | {"run_id": self.run_id}
        self._quarantine[zone].append(json.dumps(line, ensure_ascii=False).encode())
        if zone == QUARANTINE_EVENTS and rejected.line:
            self.report.quarantined += 1
        elif zone == QUARANTINE_CATALOG:
            self.report.catalog_quarantined += 1
        if len(self._quarantine[zone]) >= _QUARANTINE_LINES:
            self.flush_quarantine(zone)

    def flush_quarantine(self, zone: str) -> None:
        lines = self._quarantine[zone]
        if not lines:
            return
        number = sum(key.startswith(zone) for key in self.report.quarantine_files)
        key = f"{zone}/{self.run_id}/rejected-{number:05d}.jsonl"
        self.stage(key, b"\n".join(lines) + b"\n")
        self.report.quarantine_files.append(key)
        lines.clear()


def run_etl(
    lake: Lake,
    *,
    now: datetime | None = None,
    since: date | None = None,
    until: date | None = None,
    glue: GlueCatalog | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    threads: int = 2,
    on_object: Callable[[int], None] | None = None,
) -> RunReport:
    """Curate what is new in the raw zone; see the module docstring for the guarantees.

    Holds the lake's `etl` lock throughout: a second run at the same time fails at once
    with `LakeLocked`, having changed nothing.

    With `since`/`until` (UTC dates, `until` exclusive) it re-reads every raw object whose
    hour falls in the window, processed or not: a backfill. Events already curated are
    dropped as duplicates, so a backfill adds only what is missing.
    """
    # One run at a time: a second one would drop this one's staging as uncommitted.
    with lake.lock("etl", lease_s=ETL_LEASE_S):
        return _run_etl(
            lake,
            now=now or datetime.now(UTC),
            since=since,
            until=until,
            glue=glue,
            batch_bytes=batch_bytes,
            threads=threads,
            on_object=on_object,
        )


def _raw_hours(lake: Lake) -> tuple[dict[str, datetime], int]:
    """Each raw event object's hour, by key, and how many objects are not ours to read."""
    hours: dict[str, datetime] = {}
    skipped = 0
    for key in lake.list(f"{RAW_EVENTS}/"):
        hour = _hour_of(key)
        if hour is None:
            skipped += 1  # not an object Firehose or our writers name; not ours to read
        else:
            hours[key] = hour
    return hours, skipped


def _curate_events(
    run: _Run,
    selected: list[str],
    now: datetime,
    batch_bytes: int,
    threads: int,
    on_object: Callable[[int], None] | None,
) -> None:
    """Read the selected raw objects (a pool prefetching), a batch of `batch_bytes` at a time,
    into the run's staged partitions; what cannot be read goes to quarantine."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="etl-read") as pool:
        batch: list[RawObject] = []
        size = 0
        for fetched in _prefetch(run.lake, selected, pool):
            if on_object is not None:
                on_object(1)
            for part in fetched:
                if isinstance(part, Rejected):
                    if len(fetched) == 1:
                        run.report.unreadable_objects += 1
                    else:
                        run.report.damaged_objects += 1
                    run.quarantine(part, QUARANTINE_EVENTS)
                    continue
                batch.append(part)
                size += len(part.body)
            if size >= batch_bytes:
                run.add_events(read_events(batch, now=now))
                batch, size = [], 0
        if batch:
            run.add_events(read_events(batch, now=now))
        run.drain()


def _curate_catalog(run: _Run, dumps: list[str]) -> None:
    """The newest complete catalog dumps into the items and users tables, staged."""
    catalog = curate_catalog(run.lake, dumps)
    for rejected in catalog.rejected:
        run.quarantine(rejected, QUARANTINE_CATALOG)
    run.report.catalog_dumps = dumps
    run.report.catalog_read = catalog.read
    for table, curated in ((ITEMS_TABLE, catalog.items), (USERS_TABLE, catalog.users)):
        if curated is not None:
            run.stage(curated_key(table), parquet_bytes(curated, table.dictionary_columns))
    run.report.items = None if catalog.items is None else catalog.items.num_rows
    run.report.users = None if catalog.users is None else catalog.users.num_rows


def _run_etl(
    lake: Lake,
    *,
    now: datetime,
    since: date | None,
    until: date | None,
    glue: GlueCatalog | None,
    batch_bytes: int,
    threads: int,
    on_object: Callable[[int], None] | None,
) -> RunReport:
    started = time.perf_counter()
    abandoned = lake.remove_abandoned()
    bookmark = state.load(lake)
    finished = state.roll_forward(lake, bookmark)
    if glue is not None and bookmark.changed_dates:
        glue.register(bookmark.changed_dates)

    hours, skipped = _raw_hours(lake)
    if since is not None or until is not None:  # a backfill
        selected = [k for k, hour in hours.items() if _in_window(hour, since, until)]
    else:
        selected = [k for k in hours if k not in bookmark.processed]
    dumps = complete_dumps(lake, bookmark.catalog_dump)
    if not selected and not dumps:
        return RunReport(
            seq=bookmark.seq,
            finished_previous=finished,
            skipped_keys=skipped,
            abandoned_files=abandoned,
            seconds=time.perf_counter() - started,
        )

    # The random part keeps two runs of one second apart even if a lock were ever bypassed.
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{bookmark.seq + 1:06d}-{secrets.token_hex(3)}"
    run = _Run(lake, bookmark, run_id, now)
    try:
        run.report.finished_previous = finished
        run.report.skipped_keys = skipped
        run.report.abandoned_files = abandoned
        run.report.raw_objects = len(selected)
        _curate_events(run, selected, now, batch_bytes, threads, on_object)
        _curate_catalog(run, dumps)
        run.flush_quarantine(QUARANTINE_EVENTS)
        run.flush_quarantine(QUARANTINE_CATALOG)

        interactions = {day: dict(files) for day, files in bookmark.interactions.items()}
        for day, files in run.new_files.items():
            interactions.setdefault(day, {}).update(files)
        # Objects the raw zone no longer holds (expired by its lifecycle rule) leave the bookmark.
        processed = {k for k in bookmark.processed if k in hours} | set(selected)
        new = Bookmark(
            seq=bookmark.seq + 1,
            run_id=run_id,
            committed_at=format_ts(datetime.now(UTC)),
            processed=processed,
            interactions=interactions,
            catalog_dump=dumps[-1] if dumps else bookmark.catalog_dump,
            publish=run.publish,
            changed_dates=sorted(run.new_files),
        )
        state.commit(lake, new, expected_seq=bookmark.seq)
        state.roll_forward(lake, new)
        run.report.event_dates = sorted(run.new_files)
        run.report.files = [key for files in run.new_files.values() for key in files]
        run.report.seconds = time.perf_counter() - started
        lake.write_bytes(f"{state.RUNS}/{run_id}.json", run.report.to_json())
        if glue is not None:
            glue.register(new.changed_dates)
        return run.report
    finally:
        run.close()


def parse_day(value: str) -> date:
    """A `--since/--until` value: an ISO date, read as UTC."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected a date such as 2026-11-01, got {value!r}") from None


__all__ = ["DEFAULT_BATCH_BYTES", "RunReport", "parse_day", "run_etl"]
