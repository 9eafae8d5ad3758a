"""`python -m benchmarks`: measure, compare with a peer in the same run, write docs/benchmarks.md.

Every figure in docs/benchmarks.md comes from this command. Each row sets our number beside
a peer measured on the same input, on the same machine, a moment apart, and gives the ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from benchmarks.etl import etl_rows
from benchmarks.experiments import experiments_rows
from benchmarks.filters import filters_rows
from benchmarks.foundation import Row, foundation
from benchmarks.importer import import_rows
from benchmarks.new_items import new_items_rows
from benchmarks.quality import quality
from benchmarks.ranking import ranking_rows
from benchmarks.reliability import reliability_rows
from benchmarks.scale import scale_rows
from benchmarks.serving import serving_rows
from benchmarks.settings import BenchSettings


def _figure(value: float) -> str:
    """Whole numbers for throughputs; three significant digits for metrics and seconds."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _ratio(ours: float, theirs: float) -> str:
    """ours / theirs, or why there is none (a peer that scored nothing)."""
    return f"{ours / theirs:.2f}" if theirs else "none (the peer's figure is 0)"


def _table(rows: list[Row]) -> list[str]:
    lines = [
        "| what | ours | peer | peer's figure | ratio (ours / peer) |",
        "|---|---:|---|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.what} | {_figure(row.ours)} {row.unit} | {row.peer} | "
            f"{_figure(row.theirs)} {row.unit} | {_ratio(row.ours, row.theirs)} |"
        )
    return lines


QUALITY: Final = "Training quality: what recs serves on real shops, beside peers"
SCALE: Final = "Training at scale"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--events", type=int, default=1_000_000, help="generator events")
    parser.add_argument("--sink-events", type=int, default=200_000, help="local sink events")
    parser.add_argument("--etl-events", type=int, default=10_000_000, help="ETL events")
    parser.add_argument(
        "--import-rows", type=int, default=5_000_000, help="rows of the imported CSV; 0 skips it"
    )
    parser.add_argument(
        "--quality-events", type=int, default=1_000_000, help="generated shop for quality"
    )
    parser.add_argument(
        "--ranking-events", type=int, default=200_000, help="generated shop for ranking; 0 skips"
    )
    parser.add_argument(
        "--interactions-csv", type=Path, help="also benchmark quality on this Personalize CSV"
    )
    parser.add_argument(
        "--bench-data",
        type=Path,
        help="folder of the real data sets [env RECS_BENCH_DATA; default ../shared/data]",
    )
    parser.add_argument(
        "--scale-events", type=int, default=10_000_000, help="training at scale; 0 skips it"
    )
    parser.add_argument(
        "--serving-events",
        type=int,
        default=3_000_000,
        help="events of the 1,000,000-user shop behind the API; 0 skips it",
    )
    parser.add_argument(
        "--reliability-events",
        type=int,
        default=3_000,
        help="events posted while the server is killed; 0 skips reliability",
    )
    parser.add_argument(
        "--only",
        choices=[
            "foundation",
            "import",
            "quality",
            "ranking",
            "new-items",
            "filters",
            "experiments",
            "scale",
            "serving",
            "reliability",
        ],
        help="run one section and keep the others' last figures",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks and write the report."""
    args = _parser().parse_args(argv)
    data = BenchSettings.from_env(bench_data=args.bench_data).bench_data

    started = datetime.now(UTC)
    sections: list[tuple[str, tuple[list[Row], list[str]]]] = []
    if args.only in (None, "foundation"):
        sections.append((FOUNDATION, foundation(args.events, args.sink_events)))
    if args.only is None:
        sections.append(("ETL: raw zone to curated Parquet", etl_rows(args.etl_events)))
    if args.import_rows and args.only in (None, "import"):
        sections.append((IMPORT, import_rows(args.import_rows)))
    if args.only in (None, "quality"):
        sections.append((QUALITY, quality(args.quality_events, data, args.interactions_csv)))
    if args.ranking_events and args.only in (None, "ranking"):
        sections.append((RANKING, ranking_rows(args.ranking_events, data)))
    if args.ranking_events and args.only in (None, "new-items"):
        sections.append((NEW_ITEMS, new_items_rows(args.ranking_events, data)))
    if args.ranking_events and args.only in (None, "filters"):
        sections.append((FILTERS, filters_rows(args.ranking_events, data)))
    if args.ranking_events and args.only in (None, "experiments"):
        sections.append((EXPERIMENTS, experiments_rows(args.ranking_events, data)))
    if args.scale_events and args.only in (None, "scale"):
        sections.append((SCALE, scale_rows(args.scale_events)))
    if args.serving_events and args.only in (None, "serving"):
        sections.append((SERVING, serving_rows(args.serving_events)))
    if args.reliability_events and args.only in (None, "reliability"):
        sections.append((RELIABILITY, reliability_rows(args.reliability_events)))
    stamp = (
        f"Run {started:%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{_cpus()} CPUs, Python {platform.python_version()}."
    )
    body: list[str] = []
    for title, (rows, notes) in sections:
        body += [f"## {title}", "", *([stamp, ""] if args.only else []), *_table(rows), ""]
        body += [*notes, ""]
    if args.only and args.out.exists():
        # Keep the other sections as their last full run wrote them; replace this one.
        report = _replace_section(args.out.read_text(), sections[0][0], body)
    else:
        report = [
            "# Benchmarks",
            "",
            "Written by `make bench` (`python -m benchmarks`); do not edit by hand.",
            stamp,
            "",
            *body,
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(report))
    sys.stdout.write("\n".join(report) + "\n")


FOUNDATION: Final = "Foundation: generator and local sink"
RANKING: Final = "Ranking: a shop's list re-ordered for one user"
NEW_ITEMS: Final = "New items: recommended before they have events"
FILTERS: Final = "Filters: what a named filter costs an answer"
EXPERIMENTS: Final = "Experiments: an A/B split replayed on held-out shoppers"
IMPORT: Final = "Import: a shop's CSV export into the raw zone"
SERVING = "Serving: the API over HTTP on loopback"
RELIABILITY = "Reliability: kill -9, racing ETL runs, hostile input"


def _replace_section(report: str, title: str, body: list[str]) -> list[str]:
    """The report with the section `title` replaced by `body` (or added at the end)."""
    head, *sections = report.split("\n## ")
    parts = [f"## {s}".rstrip("\n") for s in sections]
    new = "\n".join(body).rstrip("\n")
    at = next((n for n, s in enumerate(sections) if s.startswith(f"{title}\n")), None)
    if at is None:
        parts.append(new)
    else:
        parts[at] = new  # in place, so the report keeps its order
    return [head.rstrip("\n"), "", *"\n\n".join(parts).split("\n"), ""]


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
