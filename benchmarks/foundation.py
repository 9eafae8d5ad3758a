"""Foundation benchmarks: the generator writing raw files, and the local sink.

Peers, measured in the same run on the same events:
- generator -> raw files: DuckDB's own multi-threaded COPY of the same event columns to
  gzip JSON lines, partitioned by hour (what our writer does, minus the Firehose naming).
- local sink put: bare SQLite inserts of the same JSON lines into a one-column WAL table
  with the same durability (synchronous=FULL), batch for batch.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from benchmarks import END
from common.contract import parse_event
from common.lake import LocalLake
from ingestion.generator import ShopSpec, event_lines, generate_shop, write_raw
from ingestion.raw import DEFAULT_COMPRESSLEVEL, HOUR_MS, gzip_bytes, join_lines
from ingestion.sinks import BufferHints, EventLog, LocalSink


@dataclass(frozen=True)
class Row:
    """One measured figure beside its peer's."""

    what: str
    ours: float
    peer: str
    theirs: float
    unit: str = "events/s"


def _duckdb_copy(shop_columns: Mapping[str, object], folder: Path) -> float:
    con = duckdb.connect()
    con.register("events", shop_columns)
    started = time.perf_counter()
    con.execute(
        f"""
        COPY (
            SELECT event_id, 'U' || (u + 1) AS user_id, 'I' || (i + 1) AS item_id,
                   ['view', 'add_to_cart', 'purchase'][k + 1] AS event_type,
                   strftime(make_timestamp(ts * 1000), '%Y-%m-%dT%H:%M:%S.%gZ') AS ts,
                   'S' || (s + 1) AS session_id,
                   CASE WHEN k > 0 THEN price END AS price,
                   CASE WHEN k > 0 THEN q END AS quantity,
                   ts // {HOUR_MS} AS hour
            FROM events
        ) TO '{folder}' (FORMAT JSON, COMPRESSION GZIP, PARTITION_BY (hour))
        """
    )
    return time.perf_counter() - started


def generator_rows(n_events: int) -> tuple[list[Row], list[str]]:
    """Generator throughput to raw files, against DuckDB writing the same events."""
    spec = ShopSpec(
        users=max(1000, n_events // 100),
        items=max(1000, n_events // 100),
        categories=30,
        days=90,
        events=n_events,
        seed=1,
        end=END,
    )
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        started = time.perf_counter()
        shop = generate_shop(spec)
        simulated = time.perf_counter()
        report = write_raw(shop, LocalLake(Path(tmp) / "lake"))
        written = time.perf_counter()
        hexes = shop.event_id_hex
        ids = [hexes[i : i + 32] for i in range(0, n_events * 32, 32)]
        columns = {
            "event_id": np.array(
                [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in ids], dtype=object
            ),
            "u": shop.user,
            "i": shop.item,
            "k": shop.kind.astype(np.int64),
            "ts": shop.ts_ms,
            "s": shop.session,
            "price": shop.item_price[shop.item],
            "q": shop.quantity,
        }
        duck_s = _duckdb_copy(columns, Path(tmp) / "duckdb")
    body = join_lines(event_lines(shop, 0, min(n_events, 200_000)))
    timings = {}
    for level in (DEFAULT_COMPRESSLEVEL, 6):
        started_gz = time.perf_counter()
        size = len(gzip_bytes(body, level))
        timings[level] = (time.perf_counter() - started_gz, size)
    write_s = written - simulated
    total_s = written - started
    rows = [
        Row("generator: events to raw gzip JSON lines (write only)", n_events / write_s,
            "DuckDB COPY ... (FORMAT JSON, COMPRESSION GZIP, PARTITION_BY hour)",
            n_events / duck_s),
        Row("generator: simulate and write, end to end", n_events / total_s,
            "DuckDB COPY (write only)", n_events / duck_s),
        Row(f"raw zone gzip (ISA-L level {DEFAULT_COMPRESSLEVEL}): compression speed",
            len(body) / timings[DEFAULT_COMPRESSLEVEL][0] / 1e6, "zlib, gzip's default level 6",
            len(body) / timings[6][0] / 1e6, "MB/s"),
    ]  # fmt: skip
    notes = [
        f"Gzip: {len(body) / 1e6:.0f} MB of JSON lines compress "
        f"{len(body) / timings[DEFAULT_COMPRESSLEVEL][1]:.2f}:1 at level "
        f"{DEFAULT_COMPRESSLEVEL} and {len(body) / timings[6][1]:.2f}:1 at level 6.",
        f"Generator: {n_events:,} events, {spec.users:,} users, {spec.items:,} items, "
        f"{spec.days} days; {len(report.objects):,} hourly objects, "
        f"{report.bytes_written / 1e6:.0f} MB gzip. Simulation {simulated - started:.2f} s, "
        f"writing {write_s:.2f} s, DuckDB {duck_s:.2f} s. Goal: at least 200,000 events/s "
        "to raw files, end to end.",
    ]
    return rows, notes


def sink_rows(n_events: int, batch: int = 500) -> tuple[list[Row], list[str]]:
    """Local sink throughput (durable put, then flush) against bare SQLite inserts."""
    shop = generate_shop(
        ShopSpec(users=5000, items=2000, events=n_events, days=30, seed=2, end=END)
    )
    lines = event_lines(shop, 0, shop.n_events)
    started = time.perf_counter()
    events = [parse_event(line) for line in lines]
    validate_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        sink = LocalSink(
            EventLog(Path(tmp) / "log.sqlite3"),
            LocalLake(Path(tmp) / "lake"),
            hints=BufferHints(size_bytes=5 * 1024 * 1024, interval_s=3600),
        )
        started = time.perf_counter()
        for lo in range(0, len(events), batch):
            sink.log.append(events[lo : lo + batch])
        put_s = time.perf_counter() - started
        started = time.perf_counter()
        flushed = sink.flush(force=True)
        flush_s = time.perf_counter() - started
        sink.close()

        bare = sqlite3.connect(Path(tmp) / "bare.sqlite3", isolation_level=None)
        bare.execute("PRAGMA journal_mode=WAL")
        bare.execute("PRAGMA synchronous=FULL")
        bare.execute("CREATE TABLE events (line TEXT NOT NULL)")
        started = time.perf_counter()
        for lo in range(0, len(lines), batch):
            bare.execute("BEGIN")
            bare.executemany(
                "INSERT INTO events VALUES (?)", [(x,) for x in lines[lo : lo + batch]]
            )
            bare.execute("COMMIT")
        bare_s = time.perf_counter() - started
        bare.close()
    n = len(events)
    rows = [
        Row(f"local sink: durable put, batches of {batch}", n / put_s,
            f"bare SQLite insert, batches of {batch}, same durability", n / bare_s),
        Row("local sink: flush log to raw zone", n / flush_s,
            f"bare SQLite insert, batches of {batch}", n / bare_s),
        Row("contract: parse_event on JSON lines", n / validate_s,
            f"bare SQLite insert, batches of {batch}", n / bare_s),
    ]  # fmt: skip
    notes = [
        f"Local sink: {n:,} events; put {put_s:.2f} s, flush {flush_s:.2f} s into "
        f"{len(flushed.objects)} objects, validation {validate_s:.2f} s, bare SQLite "
        f"{bare_s:.2f} s. The put keeps a unique index on event_id and a per-user index for "
        "recent history, which the bare table does not.",
    ]
    return rows, notes


def foundation(n_events: int, sink_events: int) -> tuple[list[Row], list[str]]:
    """Both foundation benchmarks."""
    gen_rows, gen_notes = generator_rows(n_events)
    s_rows, s_notes = sink_rows(sink_events)
    return gen_rows + s_rows, gen_notes + s_notes
