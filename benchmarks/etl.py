"""ETL benchmark: our curation job against DuckDB's own JSON-to-Parquet copy of the same files.

Both run in a fresh child process over the same raw zone (gzip JSON lines in Firehose's
layout), so each one's wall time and peak resident memory are its own. The peer is
`COPY (SELECT *, CAST(ts AS DATE) AS event_date FROM read_json(...)) TO ... (FORMAT PARQUET,
PARTITION_BY event_date)`: DuckDB's multi-threaded reader and writer, with no contract check,
no dedupe, no quarantine and no commit protocol. Ours does all four.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import END
from benchmarks.child import peak_rss_mb, run_child
from benchmarks.foundation import Row
from common.lake import LocalLake
from ingestion.generator import ShopSpec, generate_shop, write_raw


def _child(kind: str, lake: Path) -> dict[str, float]:
    """Run one side in a fresh interpreter; it reports seconds and peak RSS in MB."""
    return run_child("benchmarks.etl", kind, str(lake))


def etl_rows(n_events: int) -> tuple[list[Row], list[str]]:
    """Curate `n_events` generated events both ways; events/s and peak memory side by side."""
    with tempfile.TemporaryDirectory(prefix="recs-bench-etl-") as tmp:
        lake = LocalLake(Path(tmp) / "lake")
        spec = ShopSpec(
            users=max(1_000, n_events // 100),
            items=max(500, min(100_000, n_events // 100)),
            categories=40,
            days=90,
            events=n_events,
            seed=11,
            end=END,
        )
        written = write_raw(generate_shop(spec), lake)
        ours = _child("ours", lake.root)
        duck = _child("duckdb", lake.root)
    raw_mb = written.bytes_written / 1e6
    rows = [
        Row(
            f"ETL: raw gzip JSON to curated Parquet, {n_events:,} events",
            ours["events"] / ours["seconds"],
            "DuckDB COPY read_json to Parquet, PARTITION_BY event_date",
            n_events / duck["seconds"],
        ),
        Row(
            f"ETL: peak resident memory, {n_events:,} events",
            ours["rss_mb"],
            "DuckDB COPY, same files",
            duck["rss_mb"],
            unit="MB",
        ),
    ]
    notes = [
        f"Input: {len(written.objects):,} raw objects, {raw_mb:,.0f} MB of gzip JSON lines. "
        f"Ours: {ours['seconds']:.1f} s for {ours['events']:,.0f} events curated, with the "
        "event contract checked on every line, dedupe by event_id, quarantine, and a staged, "
        f"bookmarked commit. DuckDB: {duck['seconds']:.1f} s, copy only.",
        "Memory: ours is bounded by RECS_ETL_BATCH_MB (96 MB of decompressed JSON a batch) "
        "plus the event ids of the dates a batch touches, whatever the total.",
    ]
    return rows, notes


def _run_ours(lake: Path) -> dict[str, float]:
    from etl.job import run_etl

    started = time.perf_counter()
    report = run_etl(LocalLake(lake), now=END)
    return {"seconds": time.perf_counter() - started, "events": float(report.curated)}


def _run_duckdb(lake: Path) -> dict[str, float]:
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect()
    source = str(lake / "raw" / "events" / "**" / "*.gz")
    target = str(lake.parent / "duckdb-out")
    con.execute(
        "COPY (SELECT *, CAST(ts AS DATE) AS event_date FROM read_json("
        f"'{source}', format = 'newline_delimited', compression = 'gzip')) "
        f"TO '{target}' (FORMAT PARQUET, PARTITION_BY (event_date))"
    )
    return {"seconds": time.perf_counter() - started, "events": 0.0}


def main() -> None:
    """Child entry point: `python -m benchmarks.etl ours|duckdb LAKE`."""
    kind, lake = sys.argv[1], Path(sys.argv[2])
    figures = _run_ours(lake) if kind == "ours" else _run_duckdb(lake)
    figures["rss_mb"] = peak_rss_mb()
    sys.stdout.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
