"""Importing Personalize-format CSVs: good rows land, bad rows are reported by line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingestion.importer import InvalidImportFile, import_catalog, import_interactions
from ingestion.lake import LocalLake
from ingestion.raw import RAW_CATALOG, read_lines

INTERACTIONS = """USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,SESSION_ID,PRICE
U1,I100,1755369000,view,,S1,
U1,I100,1755369060,AddToCart,1,S1,19.99
U2,I7,1755369120,click,,S2,
U3,I7,not-a-time,view,,S3,
U4,,1755369180,view,,S4,
U5,I9,1755369240,wishlist,,S5,
U6,I9,1755369300,purchase,,S6,free
U7,I9,4102444800,purchase,,S7,3
U8,I9,1755369360,purchase,,S8,3
U9,I10
"""


def _landed(lake: LocalLake) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for key in lake.list("raw/events/")
        for line in read_lines(lake.read_bytes(key))
    ]


def test_good_rows_land_and_bad_rows_are_reported_by_line(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    path = tmp_path / "interactions.csv"
    path.write_text(INTERACTIONS)
    report = import_interactions(path, local_lake, event_type_map={"addtocart": "add_to_cart"})
    assert (report.rows, report.accepted, report.rejected) == (10, 4, 6)
    lines = dict(report.problems)
    assert "TIMESTAMP must be epoch seconds (got 'not-a-time')" in lines[5]
    assert "item_id must be 1 to 256 characters" in lines[6]
    assert (
        "EVENT_TYPE 'wishlist' is not one of view, add_to_cart, purchase; map it with --map"
        in lines[7]
    )
    assert "PRICE must be a number (got 'free')" in lines[8]
    assert "more than 5 minutes in the future" in lines[9]
    assert "row has 2 values for 7 columns" in lines[11]

    landed = sorted(_landed(local_lake), key=lambda e: str(e["ts"]))
    assert [(e["user_id"], e["event_type"]) for e in landed] == [
        ("U1", "view"),
        ("U1", "add_to_cart"),
        ("U2", "view"),
        ("U8", "purchase"),
    ]
    assert landed[1]["price"] == 19.99
    assert landed[1]["properties"] == {"event_value": "1"}
    assert landed[0]["ts"] == "2025-08-16T18:30:00.000Z"
    assert report.quarantine is not None
    rejected = [
        json.loads(line)
        for key in local_lake.list(report.quarantine)
        for line in read_lines(local_lake.read_bytes(key))
    ]
    assert [r["line"] for r in rejected] == [5, 6, 7, 8, 9, 11]
    assert rejected[0]["row"]["TIMESTAMP"] == "not-a-time"


def test_importing_the_same_file_twice_replaces_instead_of_duplicating(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    path = tmp_path / "interactions.csv"
    path.write_text(INTERACTIONS)
    first = import_interactions(path, local_lake)
    second = import_interactions(path, local_lake)
    assert first.objects == second.objects
    ids = [e["event_id"] for e in _landed(local_lake)]
    assert len(ids) == len(set(ids)) == first.accepted


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("USER_ID,ITEM_ID,TIMESTAMP\nU1,I1,1\n", "the header lacks EVENT_TYPE"),
        ("USER_ID,USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n", "repeats a column"),
    ],
)
def test_unreadable_files_fail_before_anything_lands(
    tmp_path: Path, local_lake: LocalLake, content: str, message: str
) -> None:
    path = tmp_path / "interactions.csv"
    path.write_text(content)
    with pytest.raises(InvalidImportFile, match=message):
        import_interactions(path, local_lake)
    assert list(local_lake.list("raw/")) == []


def test_missing_file_is_named(tmp_path: Path, local_lake: LocalLake) -> None:
    with pytest.raises(InvalidImportFile, match="no such file"):
        import_interactions(tmp_path / "nope.csv", local_lake)


def test_a_bad_map_target_is_refused(tmp_path: Path, local_lake: LocalLake) -> None:
    path = tmp_path / "interactions.csv"
    path.write_text(INTERACTIONS)
    with pytest.raises(InvalidImportFile, match="--map click=like"):
        import_interactions(path, local_lake, event_type_map={"click": "like"})


def test_items_and_users_become_one_catalog_dump(tmp_path: Path, local_lake: LocalLake) -> None:
    items = tmp_path / "items.csv"
    items.write_text(
        "ITEM_ID,CREATION_TIMESTAMP,TITLE,CATEGORIES,PRICE,BRAND,COLOUR\n"
        "I1,1700000000,Lamp,home|lighting,19.99,Acme,red\n"
        "I2,1700000000,Chair,home,-5,Acme,\n"
        "I3,1700000000,,home,5,Acme,\n"
    )
    users = tmp_path / "users.csv"
    users.write_text("USER_ID,MEMBERSHIP\nU1,gold\n\u0007,silver\n")
    item_report, user_report = import_catalog(local_lake, items=items, users=users)
    assert (item_report.accepted, item_report.rejected) == (1, 2)
    assert [line for line, _ in item_report.problems] == [3, 4]
    assert "price must be at least 0" in item_report.problems[0][1]
    assert "Missing title" in item_report.problems[1][1]
    assert (user_report.accepted, user_report.rejected) == (1, 1)
    keys = list(local_lake.list(RAW_CATALOG + "/"))
    assert [k.rsplit("/", 1)[1] for k in keys] == ["_manifest.json", "items.jsonl", "users.jsonl"]
    item = json.loads(local_lake.read_bytes(keys[1]))
    assert item["category"] == "home"
    assert item["attributes"] == {"categories": "home|lighting", "colour": "red"}
    assert json.loads(local_lake.read_bytes(keys[2]))["attributes"] == {"membership": "gold"}
