"""`python -m benchmarks.big_shop`: the big shop of issue 24 at 1/50 of its size, each
component's time and memory, and the extrapolation beside each AWS limit in docs/deploy.md.

The big shop: 50 million events a day, 5 million users. At 1/50 that is 1 million events a
day and 100,000 users, over `--days` days (the training window of the run). Each component
runs as its own command (`benchmarks.child.measure`: wall time and its own peak memory):
- the ETL curates the raw zone (`recs etl`), and its per-day figures are its total / days;
- training fits the window (`recs train --train-window-days`);
- the Personalize export writes the window's interactions (`recs export personalize`), with
  DuckDB held under what its sort needs so that it spills; a night's incremental export is
  one day of it, cut into parts of at most 900 MB, one import job each;
- the API's model load (`PublishedModel.load` with RECS_MODEL_USERS=store, what the Lambda
  does at a cold start: the item side only);
- publishing every user's two rows (their recommendations and their profile), two ways:
  `common.dynamodb.batch_write` with 16 batches in flight to a client that answers each
  BatchWriteItem after `LATENCY_S` (DynamoDB's typical round trip), capped by a new
  on-demand table's writes a second; and the table swap's staging of the same rows as
  gzipped DynamoDB JSON (`DynamoImportStore.write_version`, with PutObject answered at
  once). The import that follows runs in DynamoDB, outside any Lambda, and is not timed.

Scaling is taken as linear in events (ETL, export, training) or users (model, publish): a
plain assumption that the table states, not a measurement at full size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from benchmarks import END
from benchmarks.child import Measured, measure

FRACTION: Final = 50
EVENTS_PER_DAY: Final = 50_000_000 // FRACTION
USERS: Final = 5_000_000 // FRACTION
ITEMS: Final = 1_000_000 // FRACTION
LATENCY_S: Final = 0.02
#: A new on-demand DynamoDB table's write throughput before it scales (AWS: "up to 4,000
#: write request units a second"); a row of 25 recommendations is one unit.
TABLE_WRITES_PER_S: Final = 4_000
RECS: Final = str(Path(sys.executable).with_name("recs"))
#: The API Lambda's memory at `-var size=large` (infra/terraform/api.tf's sizing table).
API_MEMORY_GB: Final = 3.0
#: The pipeline Lambda's memory at `-var size=large`, where publish runs.
PIPELINE_MEMORY_GB: Final = 10.0
DOC: Final = Path("docs/deploy.md")
START, STOP = "<!-- big-shop:start -->\n", "<!-- big-shop:end -->"


@dataclass(frozen=True)
class Component:
    """One component's figures at 1/50, what they become at full size, and the limit."""

    name: str
    where: str
    seconds: float
    rss_mb: float
    scale: float  # how many times the measured work the big shop's night holds
    limit: str
    fits: str
    #: False where memory is bounded by design, whatever the data (the ETL's batches).
    memory_scales: bool = True
    #: Memory that does not grow with the shop (the interpreter and its imports).
    fixed_mb: float = 0.0
    #: False where the time measured is not the component's (memory only).
    timed: bool = True

    @property
    def big_gb(self) -> float:
        """Peak memory at full size."""
        grows = (self.rss_mb - self.fixed_mb) * (self.scale if self.memory_scales else 1)
        return (grows + self.fixed_mb) / 1024

    def row(self) -> str:
        big_s, big_gb = self.seconds * self.scale, self.big_gb
        small = f"{self.seconds:,.1f} s" + (f", {self.rss_mb:,.0f} MB" if self.rss_mb else "")
        bounded = "" if self.memory_scales else " (bounded)"
        big = f"{big_s / 60:,.1f} min" + (f", {big_gb:,.1f} GB{bounded}" if self.rss_mb else "")
        if not self.timed:
            small, big = f"{self.rss_mb:,.0f} MB", f"{big_gb:,.1f} GB"
        return f"| {self.name} | {self.where} | {small} | {big} | {self.limit} | {self.fits} |"


def build(root: Path, days: int) -> None:
    """The 1/50 shop's raw zone and catalog (not timed)."""
    from common.lake import LocalLake
    from ingestion.generator import ShopSpec, generate_shop, write_catalog, write_raw

    spec = ShopSpec(
        users=USERS, items=ITEMS, categories=50, days=days,
        events=EVENTS_PER_DAY * days, seed=11, end=END,
    )  # fmt: skip
    shop = generate_shop(spec)
    lake = LocalLake(root)
    write_raw(shop, lake)
    write_catalog(shop, lake)


class _Dynamo:
    """BatchWriteItem answered after a fixed round trip, from any thread."""

    def __init__(self) -> None:
        self.lock, self.rows = threading.Lock(), 0

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:  # noqa: N803
        time.sleep(LATENCY_S)
        with self.lock:
            self.rows += sum(len(v) for v in RequestItems.values())
        return {"UnprocessedItems": {}}


def publish_rate(rows: int, workers: int) -> float:
    """Rows a second `batch_write` reaches with `workers` batches in flight."""
    from common.dynamodb import batch_write

    client = _Dynamo()
    requests = ({"PutRequest": {"Item": {"pk": {"S": f"user#{n}"}}}} for n in range(rows))
    started = time.perf_counter()
    batch_write(client, "store", requests, workers=workers)  # type: ignore[arg-type]
    return client.rows / (time.perf_counter() - started)


class _S3:
    """PutObject answered at once: what staging costs is building and compressing lines."""

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:  # noqa: N803
        return {}


def staging_rate(rows: int) -> float:
    """Rows a second a table-swap publish stages (rows of 25 items, as published)."""
    import random

    from common.lake import S3Lake
    from serving.store import DynamoImportStore

    store = DynamoImportStore("store", lake=S3Lake("lake", client=_S3()))  # type: ignore[arg-type]
    pick = random.Random(7)
    made = (
        (f"U{n}", [f"I{pick.randrange(ITEMS)}" for _ in range(25)],
         [pick.random() for _ in range(25)])
        for n in range(rows)
    )  # fmt: skip
    rows_made = list(made)  # made before the clock starts
    started = time.perf_counter()
    store.write_version("v", "user", rows_made)
    return rows / (time.perf_counter() - started)


def model_load(lake: str, version: str, users: str) -> None:
    """What the API does at a cold start (run in its own process by `measure`)."""
    from common.lake import open_lake
    from training.published import PublishedModel

    PublishedModel.load(open_lake(lake), version, "store" if users == "store" else "lake")


def run(days: int) -> list[Component]:
    """Build the shop, measure each component, and extrapolate."""
    found: list[Component] = []
    with tempfile.TemporaryDirectory(prefix="recs-big-shop-") as folder:
        lake = Path(folder) / "lake"
        build(lake, days)
        etl = measure([RECS, "etl", "--lake", str(lake)])
        # A night curates one day at full size: 50 / days times what was measured. Its memory
        # is bounded by RECS_ETL_BATCH_MB, whatever the day's size.
        found.append(Component(
            f"ETL: one day's events (measured: {days} days)", "Glue job (G.1X driver, 16 GB)",
            etl.seconds, etl.rss_mb, FRACTION / days,
            "Glue: no time limit; G.1X driver 16 GB", _fits(etl, 1, 16), memory_scales=False,
        ))  # fmt: skip
        window, now = str(days), f"{END:%Y-%m-%dT%H:%M:%SZ}"  # the shop's clock
        train = measure(
            [RECS, "train", "--lake", str(lake), "--train-window-days", window, "--now", now]
        )
        widest = int(days * 120 * 1024 / (train.rss_mb * FRACTION))
        found.append(Component(
            f"Training: a {days}-day window (at most {widest} days fit in 120 GB)",
            "Batch on Fargate (4 vCPU, 16 GB default)", train.seconds, train.rss_mb, FRACTION,
            "Fargate: 16 vCPU, 120 GB", _fits(train, FRACTION, 120),
        ))  # fmt: skip
        # DuckDB held to a limit under what the sort needs here, so that it spills: the
        # figure then shows the bound, not the data.
        memory_mb = 128
        export = measure(
            [RECS, "export", "personalize", "--lake", str(lake), "--run", "big"],
            env={**os.environ, "RECS_EXPORT_MEMORY_MB": str(memory_mb)},
        )
        # Imported here: the model-load children import this module, and DuckDB is not the
        # API's to carry.
        from common.layout import PERSONALIZE_EXPORTS
        from etl.personalize import PART_BYTES

        described = json.loads((lake / PERSONALIZE_EXPORTS / "big" / "export.json").read_text())
        day = described["interaction_bytes"] / days * FRACTION
        jobs = math.ceil(day / PART_BYTES)
        per_day_min = export.seconds / days * FRACTION / 60
        found.append(Component(
            f"Personalize export of a day (measured: {days} days, DuckDB in {memory_mb} MB): "
            f"{day / 2**30:.1f} GB at full size, {jobs} import jobs of at most "
            f"{PART_BYTES // 10**6} MB; /tmp holds two parts; a full export of history "
            f"takes {per_day_min:.1f} min a day, so at most {int(15 / per_day_min)} days",
            "pipeline Lambda (4 GB, 10 GB /tmp)", export.seconds, export.rss_mb, FRACTION / days,
            "Lambda: 4 GB as deployed, 10 GB /tmp, 15 min; an INCREMENTAL import job: 1 GB",
            "yes" if export.rss_mb / 1024 <= 4 else "no",
            memory_scales=False,
        ))  # fmt: skip
        version = (
            json.loads((lake / "models" / "production.json").read_text())["version"]
            if (lake / "models" / "production.json").exists()
            else sorted(p.name for p in (lake / "models").iterdir() if p.is_dir())[-1]
        )
        bare = "import training.published, common.lake"  # what any load starts from
        fixed = measure([sys.executable, "-c", bare]).rss_mb
        for users, what in (("lake", "whole version"), ("store", "item side only")):
            code = (
                "from benchmarks.big_shop import model_load; "
                f"model_load({str(lake)!r}, {version!r}, {users!r})"
            )
            load = measure([sys.executable, "-c", code])
            api = Component(
                f"API model load, {what} (RECS_MODEL_USERS={users})",
                f"API Lambda ({API_MEMORY_GB:g} GB at size=large)", load.seconds, load.rss_mb,
                FRACTION, "Lambda: 10 GB at most", "", fixed_mb=fixed,
            )  # fmt: skip
            need = api.big_gb
            fits = "yes" if need <= API_MEMORY_GB else f"no: needs {need:,.1f} GB"
            found.append(replace(api, fits=fits))
        # Publish holds the version whole (the users' histories become profile rows) and
        # streams the batch files; measured with the SQLite store, as the time of writing
        # to DynamoDB is the rows' below.
        store = str(Path(folder) / "store.sqlite3")
        held = measure([RECS, "publish", "--force", "--lake", str(lake), "--store", store, version])
        command = measure([RECS, "publish", "--help"]).rss_mb  # the command, loading nothing
        publish = Component(
            "Publish: the version loaded whole for its profile rows, batch files streamed",
            f"pipeline Lambda ({PIPELINE_MEMORY_GB:g} GB at size=large)", held.seconds,
            held.rss_mb, FRACTION, "Lambda: 10 GB at most", "", fixed_mb=command, timed=False,
        )  # fmt: skip
        need = publish.big_gb
        fits = "yes" if need <= PIPELINE_MEMORY_GB else f"no: needs {need:,.1f} GB"
        found.append(replace(publish, fits=fits))
    many = publish_rate(100_000, 16)
    effective = min(many, TABLE_WRITES_PER_S)  # the table caps any number of writers
    seconds = 2 * USERS / effective  # a recommendations row and a profile row each
    full = seconds * FRACTION / 60
    found.append(Component(
        f"Publish by BatchWriteItem (RECS_STORE_PUBLISH=rows), 16 in flight "
        f"({many:,.0f} rows/s here)",
        "pipeline Lambda (15 min)", seconds, 0.0, FRACTION,
        f"Lambda: 15 min; a new on-demand table: {TABLE_WRITES_PER_S:,} writes/s",
        "yes" if full <= 15 else f"no: {full:,.0f} min",
    ))  # fmt: skip
    staged = staging_rate(100_000)
    seconds = 2 * USERS / staged
    full = seconds * FRACTION / 60
    found.append(Component(
        f"Publish by table swap (RECS_STORE_PUBLISH=import): staging the rows "
        f"({staged:,.0f} rows/s here); DynamoDB's import then runs on its own, polled",
        "pipeline Lambda (15 min)", seconds, 0.0, FRACTION,
        "Lambda: 15 min for the staging; ImportTable uses no write capacity",
        "yes" if full <= 15 else f"no: {full:,.0f} min",
    ))  # fmt: skip
    return found


def _fits(measured: Measured, scale: float, limit_gb: float) -> str:
    need = measured.rss_mb * scale / 1024
    return "yes" if need <= limit_gb else f"no: needs {need:,.0f} GB"


def render(found: list[Component], days: int) -> str:
    """The section docs/deploy.md shows."""
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} by `python -m benchmarks.big_shop --days {days}`"
        f" at 1/{FRACTION}: {EVENTS_PER_DAY:,} events a day, {USERS:,} users, {ITEMS:,} items.",
        "",
        "| component | runs on | at 1/50 | big shop (x50, linear) | AWS limit | fits |",
        "|---|---|---:|---:|---|---|",
        *(c.row() for c in found),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run, then write the section between its markers in docs/deploy.md."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.big_shop", description=__doc__)
    parser.add_argument("--days", type=int, default=3, help="days generated: the window")
    args = parser.parse_args(argv)
    section = render(run(args.days), args.days)
    text = DOC.read_text()
    head, rest = text.split(START, 1)
    DOC.write_text(head + START + section + rest[rest.index(STOP) :])
    sys.stdout.write(section)


if __name__ == "__main__":
    main()
