"""The raw zone: the layout Firehose writes, and writers that produce it without Firehose.

Events:  `raw/events/YYYY/MM/DD/HH/<stream>-<version>-<YYYY-MM-DD-HH-MM-SS>-<uuid>[.gz]`,
         JSON lines, one event each. Firehose names the hour by arrival; a backfill (the
         generator, an import) names it by the events' own hour.
Catalog: `raw/catalog/<dump-ts>/{items,users}.jsonl` plus `_manifest.json`, written last, so a
         reader takes a dump only once it is whole.

This module owns that contract; the ETL imports it to read the zone back.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import uuid
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Final

from common.lake import Lake
from common.layout import RAW_CATALOG, RAW_EVENTS

CATALOG_MANIFEST: Final = "_manifest.json"
STREAM_VERSION: Final = 1
HOUR_MS: Final = 3_600_000
#: Firehose buffers at most 128 MiB before it writes; we cut objects well below that so that
#: one object never needs much memory to read.
DEFAULT_OBJECT_BYTES: Final = 64 * 1024 * 1024
#: Firehose does not document its gzip level. The raw zone is written once and read once, by
#: the ETL: level 1 (ISA-L's, see `gzip_bytes`) is the fastest that still compresses well.
DEFAULT_COMPRESSLEVEL: Final = 1
#: ISA-L's highest level.
_ISAL_MAX_LEVEL: Final = 3
_KEY_NAMESPACE: Final = uuid.UUID("0b8f7f3c-8f6e-4d53-9a35-5a3f2e8f4c21")
#: Any object the raw event zone may hold: ours (`.gz`) or Firehose's, with compression on or
#: off. The ETL lists `raw/events/` and reads every key that matches.
RAW_EVENT_KEY: Final = re.compile(
    r"^raw/events/(?P<year>\d{4})/(?P<month>\d{2})/(?P<day>\d{2})/(?P<hour>\d{2})/"
    r"(?P<stream>[^/]+)-(?P<version>\d+)-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[^/]+$"
)
GZIP_MAGIC: Final = b"\x1f\x8b"
#: The stream name of objects `recs import` writes: a shop's past, whose events may be of
#: any age. Readers check every other object's events as live ones.
HISTORY_STREAM: Final = "recs-import"


def is_history(key: str) -> bool:
    """Whether a raw event object holds imported history (its stream is `recs-import`)."""
    match = RAW_EVENT_KEY.match(key)
    return match is not None and match["stream"] == HISTORY_STREAM


def read_lines(body: bytes) -> list[bytes]:
    """The JSON lines of one raw object, gzip or plain: told apart by content, not by name."""
    if body[:2] == GZIP_MAGIC:
        body = gzip.decompress(body)  # handles multi-member files, as `cat a.gz b.gz` makes
    return [line for line in body.split(b"\n") if line.strip()]


def event_object_key(stream: str, when: datetime, unique: str, *, compressed: bool = True) -> str:
    """The key Firehose gives an object delivered at `when` (UTC), under our raw prefix."""
    when = when.astimezone(UTC)
    suffix = ".gz" if compressed else ""
    return (
        f"{RAW_EVENTS}/{when:%Y/%m/%d/%H}/"
        f"{stream}-{STREAM_VERSION}-{when:%Y-%m-%d-%H-%M-%S}-{unique}{suffix}"
    )


@functools.cache
def _isal() -> ModuleType | None:
    """ISA-L's zlib interface, imported on first use: the API's Lambda zip, which never
    writes the raw zone, carries no `isal`."""
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


def gzip_bytes(body: bytes, level: int = DEFAULT_COMPRESSLEVEL) -> bytes:
    """Gzip with a zero mtime, so the same lines always make the same bytes.

    Levels 0 to 3 go through Intel's ISA-L (`isal`) where it is installed: at level 1 it
    compressed an import's JSON lines four times as fast as zlib's level 1, into files a
    tenth smaller (392 MB: 0.40 s and 81 MB against 1.71 s and 90 MB), and any gzip reader
    reads them. Other levels, and a package
    without it (the API's Lambda zip), use zlib."""
    isal = _isal()
    if level <= _ISAL_MAX_LEVEL and isal is not None:
        compressor = isal.compressobj(level, isal.DEFLATED, 31)
        return bytes(compressor.compress(body) + compressor.flush())
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(body) + compressor.flush()


def join_lines(lines: Iterable[str]) -> bytes:
    """JSON lines as Firehose concatenates them: each record ends with a newline."""
    text = "\n".join(lines)
    return (text + "\n").encode() if text else b""


@dataclass
class WriteReport:
    """What a writer put in the lake."""

    objects: list[str] = field(default_factory=list)
    events: int = 0
    bytes_written: int = 0


class RawEventWriter:
    """Writes JSON lines into hour partitions of the raw zone, as a backfill through Firehose would.

    Lines are buffered per hour and cut into objects of at most `object_bytes`; when all
    buffers together pass `buffer_bytes`, the largest is written early, so memory stays
    bounded whatever order the lines come in. Object names are derived from `run_key`, the
    hour and the part number: writing the same input again replaces the same objects instead
    of adding copies. Compression and upload run on a small thread pool (zlib and I/O release
    the GIL) while the caller builds the next lines.
    """

    def __init__(
        self,
        lake: Lake,
        *,
        stream: str,
        run_key: str,
        object_bytes: int = DEFAULT_OBJECT_BYTES,
        buffer_bytes: int = 4 * DEFAULT_OBJECT_BYTES,
        compresslevel: int = DEFAULT_COMPRESSLEVEL,
        threads: int = 4,
    ) -> None:
        self._lake = lake
        self._stream = stream
        self._run_key = run_key
        self._object_bytes = object_bytes
        self._buffer_bytes = buffer_bytes
        self._level = compresslevel
        self._buffers: dict[int, list[bytes]] = {}
        #: Lines buffered per hour, where every caller said (None: count them).
        self._lines: dict[int, int | None] = {}
        self._sizes: dict[int, int] = {}
        self._parts: dict[int, int] = {}
        self._buffered = 0
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="raw-writer")
        self._max_pending = 4 * threads
        self._pending: list[Future[int]] = []
        self.report = WriteReport()

    def add(self, hour_ms: int, lines: Sequence[str]) -> None:
        """Buffer lines whose events fall in the hour starting at `hour_ms` (epoch ms, UTC)."""
        if lines:
            self.add_bytes(hour_ms, join_lines(lines), len(lines))

    def add_bytes(self, hour_ms: int, body: bytes, lines: int | None = None) -> None:
        """Buffer JSON lines of one hour, each ending with a newline, already joined;
        `lines` says how many there are, where the caller knows."""
        if not body:
            return
        hour = hour_ms - hour_ms % HOUR_MS
        self._buffers.setdefault(hour, []).append(body)
        known = self._lines.get(hour, 0)
        self._lines[hour] = None if known is None or lines is None else known + lines
        self._sizes[hour] = self._sizes.get(hour, 0) + len(body)
        self._buffered += len(body)
        if self._sizes[hour] >= self._object_bytes:
            self._write_hour(hour)
        while self._buffered > self._buffer_bytes:
            self._write_hour(max(self._sizes, key=self._sizes.__getitem__))

    def complete(self, hour_ms: int) -> None:
        """Say that no more lines will come for this hour: write its buffer now.

        A caller whose input is sorted by time calls this as each hour ends, so that
        compression and upload overlap with building the next hour's lines.
        """
        hour = hour_ms - hour_ms % HOUR_MS
        if hour in self._buffers:
            self._write_hour(hour)

    def _write_hour(self, hour: int) -> None:
        """The hour's buffer in objects of at most `object_bytes`, cut between lines (a
        longer line is an object of its own)."""
        body = b"".join(self._buffers.pop(hour))
        self._buffered -= self._sizes.pop(hour)
        lines = self._lines.pop(hour, None)
        if len(body) <= self._object_bytes:
            self._submit(hour, body, lines)
            return
        start = 0
        while start < len(body):
            end = len(body)
            if end - start > self._object_bytes:
                end = body.rfind(b"\n", start, start + self._object_bytes) + 1
                if end <= start:
                    end = body.index(b"\n", start) + 1
            self._submit(hour, body[start:end])
            start = end

    def _submit(self, hour: int, body: bytes, lines: int | None = None) -> None:
        part = self._parts.get(hour, 0)
        self._parts[hour] = part + 1
        when = datetime.fromtimestamp(hour / 1000, UTC)
        unique = str(uuid.uuid5(_KEY_NAMESPACE, f"{self._run_key}/{hour}/{part}"))
        key = event_object_key(self._stream, when, unique)
        self.report.objects.append(key)
        self.report.events += body.count(b"\n") if lines is None else lines
        self._pending.append(self._pool.submit(self._put, key, body))
        if len(self._pending) > self._max_pending:
            self._drain(keep=self._max_pending // 2)

    def _put(self, key: str, body: bytes) -> int:
        data = gzip_bytes(body, self._level)
        self._lake.write_bytes(key, data)
        return len(data)

    def _drain(self, keep: int = 0) -> None:
        while len(self._pending) > keep:
            self.report.bytes_written += self._pending.pop(0).result()

    def close(self) -> WriteReport:
        """Write every buffer and wait for all uploads; raise the first upload error."""
        try:
            for hour in sorted(self._buffers):
                self._write_hour(hour)
            self._drain()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        return self.report

    def __enter__(self) -> RawEventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._pool.shutdown(wait=True, cancel_futures=True)


def catalog_dump_prefix(dumped_at: datetime) -> str:
    """The folder of one catalog dump, named by its UTC time so that dumps sort by age."""
    return f"{RAW_CATALOG}/{dumped_at.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def write_catalog_dump(
    lake: Lake,
    dumped_at: datetime,
    *,
    items: Iterable[dict[str, Any]],
    users: Iterable[dict[str, Any]] = (),
) -> str:
    """Write one catalog dump (items and users as JSON lines) and then its manifest.

    Returns the dump's prefix. The manifest is written last: a dump without one is
    incomplete and readers skip it.
    """
    prefix = catalog_dump_prefix(dumped_at)
    counts = {}
    for name, records in (("items", items), ("users", users)):
        lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in records]
        lake.write_bytes(f"{prefix}/{name}.jsonl", join_lines(lines))
        counts[name] = len(lines)
    manifest = {
        "dumped_at": dumped_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "files": {f"{name}.jsonl": n for name, n in counts.items()},
    }
    lake.write_bytes(f"{prefix}/{CATALOG_MANIFEST}", json.dumps(manifest, indent=2).encode())
    return prefix
