"""Merging catalog dumps: latest attributes, first sightings kept, departed items inactive."""

from __future__ import annotations

from datetime import UTC, datetime

from common.lake import LocalLake
from etl.catalog import complete_dumps, curate_catalog, curated_key, parquet_bytes
from etl.schema import ITEMS_TABLE
from ingestion.raw import write_catalog_dump

ITEM = {
    "title": "Lamp",
    "category": "home",
    "price": 10.0,
    "brand": "Acme",
    "created_at": "2026-01-01T00:00:00Z",
}
DAY1 = datetime(2026, 10, 1, tzinfo=UTC)
DAY2 = datetime(2026, 10, 2, tzinfo=UTC)


def test_dumps_merge_keeping_first_sightings_and_marking_departures(
    local_lake: LocalLake,
) -> None:
    write_catalog_dump(
        local_lake,
        DAY1,
        items=[{**ITEM, "item_id": "I1"}, {**ITEM, "item_id": "I2"}],
        users=[{"user_id": "U1", "attributes": {"region": "north"}}],
    )
    first = curate_catalog(local_lake, complete_dumps(local_lake, None))
    assert first.items is not None
    local_lake.write_bytes(
        curated_key(ITEMS_TABLE), parquet_bytes(first.items, ITEMS_TABLE.dictionary_columns)
    )
    write_catalog_dump(
        local_lake,
        DAY2,
        items=[{**ITEM, "item_id": "I2", "price": 12.5}, {**ITEM, "item_id": "I3"}],
    )
    dumps = complete_dumps(local_lake, "raw/catalog/20261001T000000Z")
    assert dumps == ["raw/catalog/20261002T000000Z"]
    second = curate_catalog(local_lake, dumps)
    assert second.users is None  # the second dump had no users: the table is unchanged
    assert second.items is not None
    rows = {r["item_id"]: r for r in second.items.to_pylist()}
    assert sorted(rows) == ["I1", "I2", "I3"]
    assert rows["I1"]["active"] is False
    assert rows["I1"]["last_seen_at"] == DAY1
    assert rows["I2"]["price"] == 12.5
    assert rows["I2"]["first_seen_at"] == DAY1
    assert rows["I2"]["last_seen_at"] == DAY2
    assert rows["I3"]["first_seen_at"] == DAY2
    assert rows["I3"]["active"] is True


def test_bad_catalog_records_are_refused_with_their_line(local_lake: LocalLake) -> None:
    write_catalog_dump(
        local_lake,
        DAY1,
        items=[{**ITEM, "item_id": "I1"}, {**ITEM, "item_id": "I2", "price": -1.0}],
    )
    result = curate_catalog(local_lake, complete_dumps(local_lake, None))
    assert result.items is not None
    assert result.items["item_id"].to_pylist() == ["I1"]
    assert [(r.line, r.problems[0].field) for r in result.rejected] == [(2, "price")]


def test_a_dump_without_its_manifest_is_not_read_yet(local_lake: LocalLake) -> None:
    prefix = write_catalog_dump(local_lake, DAY1, items=[{**ITEM, "item_id": "I1"}])
    local_lake.delete(f"{prefix}/_manifest.json")
    assert complete_dumps(local_lake, None) == []
