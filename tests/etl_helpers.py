"""Shops, planted faults and content snapshots shared by the ETL suites."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from common.lake import Lake
from common.layout import LOCKS
from etl.schema import INTERACTIONS_TABLE
from ingestion.generator import ShopSpec, generate_shop, write_catalog, write_raw
from ingestion.raw import event_object_key, gzip_bytes, read_lines

END = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 2, tzinfo=UTC)
GOOD = {
    "event_id": "planted-good",
    "user_id": "U1",
    "item_id": "I1",
    "event_type": "purchase",
    "ts": "2026-10-30T12:00:00.000Z",
    "price": 5.0,
    "quantity": 1,
}
#: Bad lines planted in one raw object, with the field each one's first problem names.
PLANTED_BAD: list[tuple[bytes, str]] = [
    (json.dumps({**GOOD, "event_id": "bad-1", "event_type": "wishlist"}).encode(), "event_type"),
    (json.dumps({**GOOD, "event_id": "bad-2", "user_id": ""}).encode(), "user_id"),
    (b'{"event_id": "bad-3", "user_id": "U1"', "body"),
    (json.dumps({**GOOD, "event_id": "bad-4", "ts": "2026-10-30T12:00:00"}).encode(), "ts"),
    (json.dumps({**GOOD, "event_id": "bad-5", "price": "5.00"}).encode(), "price"),
]


@dataclass(frozen=True)
class Planted:
    """What a planted shop holds, for assertions."""

    events: int
    bad_object: str
    duplicate_object: str


def plant_shop(lake: Lake, *, events: int = 3000, days: int = 4, seed: int = 7) -> Planted:
    """A small generated shop, plus an object of bad lines and a redelivered object."""
    shop = generate_shop(
        ShopSpec(users=200, items=100, categories=5, days=days, events=events, seed=seed, end=END)
    )
    report = write_raw(shop, lake)
    write_catalog(shop, lake)
    bad_key = event_object_key(
        "firehose", datetime(2026, 10, 30, 12, tzinfo=UTC), "bad", compressed=False
    )
    lines = [json.dumps(GOOD).encode()] + [line for line, _ in PLANTED_BAD]
    lake.write_bytes(bad_key, b"\n".join(lines) + b"\n")
    # Firehose delivers at least once: the same records again, under another key.
    original = report.objects[0]
    copy_key = event_object_key("firehose", datetime(2026, 10, 31, 23, tzinfo=UTC), "again")
    lake.write_bytes(copy_key, gzip_bytes(b"\n".join(read_lines(lake.read_bytes(original)))))
    return Planted(events=events + 1, bad_object=bad_key, duplicate_object=copy_key)


def snapshot(lake: Lake) -> dict[str, bytes]:
    """Every object of the lake and its bytes, but for lock files, which name their last
    holder and are rewritten by every run that takes the lock."""
    return {key: lake.read_bytes(key) for key in lake.list("") if not key.startswith(LOCKS)}


def curated_rows(lake: Lake) -> list[dict[str, Any]]:
    """The curated interactions, with their partition, sorted by event id."""
    rows = []
    for key in lake.list(f"{INTERACTIONS_TABLE.prefix}/"):
        table = pq.read_table(pa.BufferReader(lake.read_bytes(key)))
        assert table.schema.equals(INTERACTIONS_TABLE.arrow_schema, check_metadata=False)
        day = key.split("event_date=")[1].split("/")[0]
        rows += [{**row, "event_date": day} for row in table.to_pylist()]
    return sorted(rows, key=lambda r: r["event_id"])


def quarantined(lake: Lake) -> list[dict[str, Any]]:
    """Quarantine lines without their run id, sorted."""
    lines = []
    for key in lake.list("quarantine/"):
        for line in read_lines(lake.read_bytes(key)):
            record = json.loads(line)
            record.pop("run_id")
            lines.append(record)
    return sorted(lines, key=lambda r: (r["source"], r["line"]))


def content(lake: Lake) -> dict[str, Any]:
    """What a reader of the curated zone and the quarantine sees."""
    catalog = {
        key: pq.read_table(pa.BufferReader(lake.read_bytes(key))).to_pylist()
        for key in lake.list("curated/")
        if not key.startswith(INTERACTIONS_TABLE.prefix)
    }
    return {
        "interactions": curated_rows(lake),
        "catalog": catalog,
        "quarantine": quarantined(lake),
        "staging": list(lake.list("_state/etl/staging/")),
    }


def curated_training_shop(lake: Lake) -> None:
    """A generated shop big enough to train on (20,000 events), curated by the ETL."""
    from etl.job import run_etl

    spec = ShopSpec(users=400, items=150, categories=6, days=20, events=20_000, seed=5, end=END)
    built = generate_shop(spec)
    write_raw(built, lake)
    write_catalog(built, lake)
    run_etl(lake, now=NOW)


def staples_csv(path: Path) -> Path:
    """Personalize-format purchases where every customer rebuys the same five staples each
    day: popularity is already a perfect answer, so no model beats it and a gate keeps the
    candidate."""
    start = 1_760_000_000
    lines = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE"]
    for day in range(40):
        for user in range(60):
            for item in range(5):
                lines.append(f"U{user},I{item},{start + day * 86_400 + user * 60 + item},purchase")
    for user in range(60):  # one stray view each, so the catalog is more than the staples
        lines.append(f"U{user},I{100 + user % 20},{start + user},view")
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    return path
