"""Importing Personalize-format CSVs: what lands, what is refused and why, and what is never
written twice."""

from __future__ import annotations

import gzip
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.lake import LocalLake
from common.layout import RAW_CATALOG
from etl.job import run_etl
from etl.sql import connect
from ingestion.csv_files import InvalidImportFile, parse_timestamp
from ingestion.importer import ImportOptions, import_files, problem_kind
from ingestion.known import id_keys
from ingestion.raw import is_history, read_lines

NOW = datetime(2026, 11, 25, tzinfo=UTC)
INTERACTIONS = """USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,SESSION_ID,PRICE
U1,I100,1755369000,view,,S1,
U1,I100,1755369060,AddToCart,1,S1,19.99
U2,I7,1755369120,click,,S2,
U3,I7,not-a-time,view,,S3,
U4,,1755369180,view,,S4,
U5,I9,1755369240,share,,S5,
U6,I9,1755369300,purchase,,S6,free
U7,I9,4102444800,purchase,,S7,3
U8,I9,1755369360,purchase,,S8,3
U9,I10
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _landed(lake: LocalLake) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for key in lake.list("raw/events/")
        for line in read_lines(lake.read_bytes(key))
    ]


def _quarantined(lake: LocalLake, prefix: str) -> list[dict[str, Any]]:
    return [
        json.loads(line) for key in lake.list(prefix) for line in read_lines(lake.read_bytes(key))
    ]


def test_good_rows_land_and_bad_rows_are_reported_by_line(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    path = _write(tmp_path / "interactions.csv", INTERACTIONS)
    [report] = import_files(local_lake, interactions=path, now=NOW)
    assert (report.rows, report.accepted, report.rejected) == (10, 4, 6)
    lines = dict(report.problems)
    assert "TIMESTAMP must be Unix seconds such as 1755369000" in lines[5]
    assert "(got 'not-a-time')" in lines[5]
    assert "item_id must not be empty" in lines[6]
    assert (
        "EVENT_TYPE 'share' is not one of view, add_to_cart, purchase; map it with "
        "--map share=view" in lines[7]
    )
    assert "PRICE must be a number (got 'free')" in lines[8]
    assert "more than 5 minutes in the future" in lines[9]
    assert "row has 2 values for 7 columns" in lines[11]
    assert report.unmapped == {"share": 1}

    landed = sorted(_landed(local_lake), key=lambda e: str(e["ts"]))
    assert [(e["user_id"], e["event_type"]) for e in landed] == [
        ("U1", "view"),
        ("U1", "add_to_cart"),
        ("U2", "view"),
        ("U8", "purchase"),
    ]
    assert landed[1]["price"] == 19.99
    assert landed[1]["properties"] == {"event_value": "1"}
    assert landed[1]["session_id"] == "S1"
    assert landed[0]["ts"] == "2025-08-16T18:30:00.000Z"
    assert all(is_history(key) for key in local_lake.list("raw/events/"))
    assert report.quarantine is not None
    rejected = _quarantined(local_lake, report.quarantine)
    assert [r["line"] for r in rejected] == [5, 6, 7, 8, 9, 11]
    assert rejected[0]["row"]["TIMESTAMP"] == "not-a-time"
    assert rejected[-1]["row"] == ["U9", "I10"]


def test_only_what_personalize_requires_is_required(tmp_path: Path, local_lake: LocalLake) -> None:
    path = _write(tmp_path / "i.csv", "USER_ID,ITEM_ID,TIMESTAMP\nU1,I1,1755369000\n")
    with pytest.raises(InvalidImportFile, match="no EVENT_TYPE; say what every row is with"):
        import_files(local_lake, interactions=path, now=NOW)
    [report] = import_files(
        local_lake, interactions=path, options=ImportOptions(event_type="purchase"), now=NOW
    )
    assert report.accepted == 1
    assert _landed(local_lake)[0]["event_type"] == "purchase"


@pytest.mark.parametrize(
    ("value", "expected", "rescaled"),
    [
        ("874724710", "1997-09-20T03:05:10+00:00", False),  # MovieLens: before 2000, kept
        ("1755369000", "2025-08-16T18:30:00+00:00", False),
        ("1755369000.5", "2025-08-16T18:30:00.500000+00:00", False),
        ("1755369000123", "2025-08-16T18:30:00.123000+00:00", True),
        ("1755369000123456", "2025-08-16T18:30:00.123456+00:00", True),
        ("2025-08-16T18:30:00Z", "2025-08-16T18:30:00+00:00", False),
        ("0", "1970-01-01T00:00:00+00:00", False),
    ],
)
def test_timestamps_of_any_age_and_unit(value: str, expected: str, rescaled: bool) -> None:
    ts, was_rescaled = parse_timestamp(value, "TIMESTAMP")
    assert (ts.isoformat(), was_rescaled) == (expected, rescaled)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5", "TIMESTAMP must be a time after 1970 in Unix seconds (got '-5')"),
        ("nan", "TIMESTAMP must be a time after 1970"),
        ("1755369000123456789", "too large for seconds, milliseconds or microseconds"),
        ("2025-08-16 18:30:00", "or RFC 3339 with a zone (got '2025-08-16 18:30:00')"),
        ("", "TIMESTAMP must be Unix seconds such as 1755369000"),
    ],
)
def test_bad_timestamps_are_refused_per_line(
    tmp_path: Path, local_lake: LocalLake, value: str, message: str
) -> None:
    path = _write(
        tmp_path / "i.csv",
        f"USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nU1,I1,1755369000,view\nU2,I2,{value},view\n",
    )
    [report] = import_files(local_lake, interactions=path, now=NOW)
    assert (report.accepted, report.rejected) == (1, 1)
    [(line, problem)] = report.problems
    assert line == 3
    assert message in problem


def test_milliseconds_are_detected_and_counted(tmp_path: Path, local_lake: LocalLake) -> None:
    path = _write(
        tmp_path / "i.csv",
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nU1,I1,1755369000000,view\nU1,I2,1755369060,view\n",
    )
    [report] = import_files(local_lake, interactions=path, now=NOW)
    assert (report.accepted, report.rescaled) == (2, 1)
    assert sorted(e["ts"] for e in _landed(local_lake)) == [
        "2025-08-16T18:30:00.000Z",
        "2025-08-16T18:31:00.000Z",
    ]


def test_unmapped_types_are_kept_and_a_second_import_with_a_map_adds_only_them(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    path = _write(
        tmp_path / "i.csv",
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n"
        "U1,I1,1755369000,view\nU1,I2,1755369060,share\nU2,I2,1755369120,SHARE\n"
        "U2,I3,1755369180,rating\n",
    )
    [first] = import_files(local_lake, interactions=path, now=NOW)
    assert (first.accepted, first.rejected) == (1, 3)
    assert first.unmapped == {"share": 1, "SHARE": 1, "rating": 1}
    assert first.quarantine is not None
    assert len(_quarantined(local_lake, first.quarantine)) == 3
    run_etl(local_lake, now=NOW)

    options = ImportOptions(event_types={"share": "add_to_cart", "rating": "view"})
    [second] = import_files(local_lake, interactions=path, options=options, now=NOW)
    assert (second.accepted, second.rejected) == (4, 0)
    etl = run_etl(local_lake, now=NOW)
    assert (etl.curated, etl.duplicates) == (3, 1)
    rows = connect(local_lake).sql("SELECT event_type, count(*) FROM interactions GROUP BY 1")
    assert dict(rows.fetchall()) == {"view": 2, "add_to_cart": 2}


SPELLINGS = {
    "view": ("view", None),
    "pv": ("view", "pv"),
    "page_view": ("view", "page_view"),
    "PageView": ("view", "PageView"),
    "click": ("view", "click"),
    "detail": ("view", "detail"),
    "AddToCart": ("add_to_cart", None),
    "addtocart": ("add_to_cart", None),
    "cart": ("add_to_cart", "cart"),
    "fav": ("add_to_cart", "fav"),
    "favorite": ("add_to_cart", "favorite"),
    "wishlist": ("add_to_cart", "wishlist"),
    "Wish-List": ("add_to_cart", "Wish-List"),
    "buy": ("purchase", "buy"),
    "order": ("purchase", "order"),
    "transaction": ("purchase", "transaction"),
}


def test_common_spellings_are_read_and_the_shops_own_name_is_curated(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    rows = [f"U{i},I{i},{1755369000 + 60 * i},{name}" for i, name in enumerate(SPELLINGS)]
    path = _write(tmp_path / "i.csv", "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n" + "\n".join(rows))
    [report] = import_files(local_lake, interactions=path, now=NOW)
    assert (report.accepted, report.rejected) == (len(SPELLINGS), 0)
    assert report.mapped[("fav", "add_to_cart")] == 1
    run_etl(local_lake, now=NOW)
    curated = connect(local_lake).sql(
        "SELECT user_id, event_type, shop_event_type FROM interactions"
    )
    names = list(SPELLINGS)
    assert {names[int(u[1:])]: (t, shop) for u, t, shop in curated.fetchall()} == SPELLINGS


def test_the_shops_name_for_a_type_does_not_change_the_events_id(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    """An export with `cart` and one with `add_to_cart` for the same rows are the same
    events, and so is an import made before the shop's names were kept."""
    header = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n"
    rows = [f"U{i},I{i % 3},{1755369000 + 60 * i},{{}}" for i in range(6)]
    for name in ("cart", "add_to_cart", "Add-To-Cart"):
        path = _write(tmp_path / f"{name}.csv", header + "\n".join(r.format(name) for r in rows))
        import_files(local_lake, interactions=path, now=NOW)
    landed = _landed(local_lake)
    assert len(landed) > 6
    assert len({e["event_id"] for e in landed}) == 6
    # U0's row has the id every release before shop_event_type gave it (git show 1f94c10).
    [first] = [e for e in landed if e["user_id"] == "U0" and "shop_event_type" in e]
    assert first["event_id"] == "dad9280a-de9d-5380-b5e7-9ccbada09e61"
    assert run_etl(local_lake, now=NOW).curated == 6


def test_a_bad_map_target_is_refused_before_anything_is_read(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    path = _write(tmp_path / "i.csv", INTERACTIONS)
    for options, message in [
        (ImportOptions(event_types={"click": "like"}), "--map click=like: the target must be"),
        (ImportOptions(event_type="like"), "--event-type like: must be one of"),
    ]:
        with pytest.raises(InvalidImportFile, match=message):
            import_files(local_lake, interactions=path, options=options, now=NOW)
    assert local_lake.top_level() is None


def _rows(n: int) -> list[str]:
    """n purchases, with a pair of identical rows (two invoice lines for one item)."""
    rows = [f"U{i % 7},I{i % 11},{1755369000 + 60 * i},purchase" for i in range(n)]
    rows.insert(5, rows[4])
    return rows


def test_overlapping_exports_add_only_the_new_rows(tmp_path: Path) -> None:
    header = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n"
    rows = _rows(40)
    whole = _write(tmp_path / "whole.csv", header + "\n".join(rows) + "\n")
    first = _write(tmp_path / "first.csv", header + "\n".join(rows[:26]) + "\n")
    second = _write(tmp_path / "second.csv", header + "\n".join(rows[14:]) + "\n")

    once = LocalLake(tmp_path / "once")
    [report] = import_files(once, interactions=whole, now=NOW)
    assert (report.accepted, report.repeats) == (41, 1)
    run_etl(once, now=NOW)
    halves = LocalLake(tmp_path / "halves")
    import_files(halves, interactions=first, now=NOW)
    run_etl(halves, now=NOW)
    import_files(halves, interactions=second, now=NOW)
    run_etl(halves, now=NOW)

    query = "SELECT event_id, user_id, item_id, ts FROM interactions ORDER BY ts, event_id"
    expected = connect(once).sql(query).fetchall()
    assert len(expected) == 41  # the identical pair stays two purchases
    assert connect(halves).sql(query).fetchall() == expected


@pytest.mark.parametrize("curated", [False, True], ids=["raw zone", "curated, raw expired"])
def test_an_import_says_how_many_events_are_new(tmp_path: Path, curated: bool) -> None:
    """Issue 27, item 3: a re-import that overlaps an earlier one says what it added. The
    earlier one is found in the raw zone before the ETL, and in the curated zone after it,
    also once S3's lifecycle rule has expired the raw objects."""
    header = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n"
    rows = _rows(40)
    first = _write(tmp_path / "first.csv", header + "\n".join(rows[:26]) + "\n")
    second = _write(tmp_path / "second.csv", header + "\n".join(rows[14:]) + "\n")
    lake = LocalLake(tmp_path / "lake")
    [report] = import_files(lake, interactions=first, now=NOW)
    assert (report.accepted, report.new) == (26, 26)
    if curated:
        run_etl(lake, now=NOW)
        for key in lake.list("raw/events/"):
            lake.delete(key)
    [report] = import_files(lake, interactions=second, now=NOW)
    assert (report.accepted, report.new) == (27, 15)
    [again] = import_files(lake, interactions=second, now=NOW)
    assert (again.accepted, again.new) == (27, 0)


def test_ids_come_from_content_not_from_the_file(tmp_path: Path, local_lake: LocalLake) -> None:
    header = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n"
    rows = _rows(10)
    a = _write(tmp_path / "a.csv", header + "\n".join(rows) + "\n")
    b = _write(tmp_path / "b.csv", "\n" + header + "\n".join(reversed(rows)) + "\n\n")
    import_files(local_lake, interactions=a, now=NOW)
    ids_a = sorted(e["event_id"] for e in _landed(local_lake))
    other = LocalLake(tmp_path / "other")
    import_files(other, interactions=b, now=NOW)
    assert sorted(e["event_id"] for e in _landed(other)) == ids_a
    assert len(set(ids_a)) == 11


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty; it needs a header row"),
        (b"\n\n", "the file is empty; it needs a header row"),
        (b"USER_ID,ITEM_ID\nU1,I1\n", "the header lacks TIMESTAMP, which an interactions file"),
        (b"USER_ID,USER_ID,ITEM_ID,TIMESTAMP\n", "the header repeats USER_ID"),
        (b"USER_ID,,ITEM_ID,TIMESTAMP\n", "column 2 of the header has no name"),
        (
            b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nU1,I1,1755369000,view\nU\xe9,I1,1,view\n",
            "line 3: not UTF-8 text",
        ),
        (
            b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nU1,I1,1755369000,view\nU2,"
            + b"x" * 200_000
            + b",1,view\n",
            "line 3: not readable as CSV (field larger than field limit",
        ),
    ],
)
def test_unreadable_files_fail_before_anything_is_written(
    tmp_path: Path, local_lake: LocalLake, content: bytes, message: str
) -> None:
    path = tmp_path / "interactions.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidImportFile, match=re.escape(message)):
        import_files(local_lake, interactions=path, now=NOW)
    assert local_lake.top_level() is None


def test_a_bad_items_header_leaves_no_half_import(tmp_path: Path, local_lake: LocalLake) -> None:
    events = _write(tmp_path / "i.csv", INTERACTIONS)
    items = _write(tmp_path / "items.csv", "PRODUCT,TITLE\nI1,Lamp\n")
    with pytest.raises(InvalidImportFile, match=r"items\.csv: the header lacks ITEM_ID"):
        import_files(local_lake, interactions=events, items=items, now=NOW)
    assert local_lake.top_level() is None


def test_an_unreadable_items_line_leaves_no_half_import(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    events = _write(tmp_path / "i.csv", INTERACTIONS)
    items = tmp_path / "items.csv"
    items.write_bytes(b"ITEM_ID,TITLE\nI1,Lamp\nI2,L\xffmp\n")
    with pytest.raises(InvalidImportFile, match=r"items.csv, line 3: not UTF-8 text"):
        import_files(local_lake, interactions=events, items=items, now=NOW)
    assert local_lake.top_level() is None


def test_missing_files_and_folders_are_named(tmp_path: Path, local_lake: LocalLake) -> None:
    with pytest.raises(InvalidImportFile, match=r"nope\.csv: no such file"):
        import_files(local_lake, interactions=tmp_path / "nope.csv", now=NOW)
    with pytest.raises(InvalidImportFile, match="not a file"):
        import_files(local_lake, items=tmp_path, now=NOW)
    with pytest.raises(InvalidImportFile, match="nothing to import"):
        import_files(local_lake, now=NOW)


def test_gzip_files_are_read_and_a_broken_one_is_named(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    path = tmp_path / "interactions.csv.gz"
    body = gzip.compress(INTERACTIONS.encode())
    path.write_bytes(body)
    [report] = import_files(local_lake, interactions=path, now=NOW)
    assert report.accepted == 4
    path.write_bytes(body[: len(body) // 2])
    with pytest.raises(InvalidImportFile, match=r"csv\.gz, line \d+: the file cannot"):
        import_files(LocalLake(tmp_path / "other"), interactions=path, now=NOW)


def test_items_need_only_an_id_and_keep_every_other_column(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    items = _write(
        tmp_path / "items.csv",
        "ITEM_ID,GENRES,TITLE,RELEASE_DATE\n"
        "1,Animation|Children's|Comedy,Toy Story (1995),01-Jan-1995\n"
        '2,Thriller,"Misérables, Les (1995)",\n'
        "3,,,\n",
    )
    options = ImportOptions(category_column="genres")
    [report] = import_files(local_lake, items=items, options=options, now=NOW)
    assert (report.accepted, report.rejected, report.notes) == (3, 0, [])
    dump = sorted(k for k in local_lake.list(RAW_CATALOG + "/") if k.endswith("items.jsonl"))
    records = [json.loads(line) for line in read_lines(local_lake.read_bytes(dump[0]))]
    assert records[0] == {
        "item_id": "1",
        "title": "Toy Story (1995)",
        "category": "Animation",
        "price": None,
        "brand": None,
        "created_at": None,
        "attributes": {"genres": "Animation|Children's|Comedy", "release_date": "01-Jan-1995"},
    }
    assert records[1]["title"] == "Misérables, Les (1995)"
    assert records[1]["category"] == "Thriller"
    assert records[2]["category"] is None


def test_items_columns_by_name_and_by_personalize_default(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    items = _write(
        tmp_path / "items.csv",
        "ITEM_ID,DESCRIPTION,MEDIAN_UNIT_PRICE,IS_NON_PRODUCT,CREATION_TIMESTAMP,PRICE,BRAND\n"
        "85123A,WHITE HANGING HEART T-LIGHT HOLDER,2.55,0,1700000000000,2.95,Acme\n"
        "POST,POSTAGE,18,1,,-1,\n",
    )
    [report] = import_files(
        local_lake, items=items, options=ImportOptions(title_column="DESCRIPTION"), now=NOW
    )
    assert (report.accepted, report.rejected, report.rescaled) == (1, 1, 1)
    assert "price must be at least 0" in report.problems[0][1]
    assert report.notes == [
        "no category column (CATEGORY, CATEGORY_L1, CATEGORIES); name one with --category-column"
    ]
    dump = next(k for k in local_lake.list(RAW_CATALOG + "/") if k.endswith("items.jsonl"))
    [record] = [json.loads(line) for line in read_lines(local_lake.read_bytes(dump))]
    assert record["title"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert (record["price"], record["brand"]) == (2.95, "Acme")
    assert record["created_at"] == "2023-11-14T22:13:20.000Z"
    assert record["attributes"] == {"median_unit_price": "2.55", "is_non_product": "0"}


def test_a_price_column_by_name(tmp_path: Path, local_lake: LocalLake) -> None:
    """Online Retail calls its price MEDIAN_UNIT_PRICE: --price-column makes it the price,
    and PRICE is then an attribute like any other column."""
    items = _write(
        tmp_path / "items.csv",
        "ITEM_ID,DESCRIPTION,MEDIAN_UNIT_PRICE,PRICE\n85123A,HEART T-LIGHT HOLDER,2.55,9\n",
    )
    options = ImportOptions(title_column="DESCRIPTION", price_column="median_unit_price")
    [report] = import_files(local_lake, items=items, options=options, now=NOW)
    assert report.accepted == 1
    dump = next(k for k in local_lake.list(RAW_CATALOG + "/") if k.endswith("items.jsonl"))
    [record] = [json.loads(line) for line in read_lines(local_lake.read_bytes(dump))]
    assert record["price"] == 2.55
    assert record["attributes"] == {"price": "9"}


@pytest.mark.parametrize(
    ("header", "options", "message"),
    [
        ("ITEM_ID\n", ImportOptions(), "needs ITEM_ID and at least one more column"),
        ("ITEM_ID,TITLE\n", ImportOptions(category_column="GENRES"), "--category-column GENRES"),
        ("ITEM_ID,TITLE\n", ImportOptions(title_column="NAME"), "--title-column NAME: "),
        ("ITEM_ID,TITLE\n", ImportOptions(price_column="COST"), "--price-column COST: "),
    ],
)
def test_unusable_items_files_are_refused(
    tmp_path: Path, local_lake: LocalLake, header: str, options: ImportOptions, message: str
) -> None:
    items = _write(tmp_path / "items.csv", header + "I1,x\n")
    with pytest.raises(InvalidImportFile, match=message):
        import_files(local_lake, items=items, options=options, now=NOW)


def test_items_and_users_become_one_catalog_dump(tmp_path: Path, local_lake: LocalLake) -> None:
    items = _write(
        tmp_path / "items.csv",
        "ITEM_ID,CREATION_TIMESTAMP,TITLE,CATEGORIES,PRICE,BRAND,COLOUR\n"
        "I1,1700000000,Lamp,home|lighting,19.99,Acme,red\n"
        "I2,1700000000,Chair,home,-5,Acme,\n"
        "I3,yesterday,Desk,home,5,Acme,\n",
    )
    users = _write(tmp_path / "users.csv", "USER_ID,MEMBERSHIP\nU1,gold\n\u0007,silver\n")
    item_report, user_report = import_files(local_lake, items=items, users=users, now=NOW)
    assert (item_report.accepted, item_report.rejected) == (1, 2)
    assert [line for line, _ in item_report.problems] == [3, 4]
    assert "price must be at least 0" in item_report.problems[0][1]
    assert "CREATION_TIMESTAMP must be Unix seconds" in item_report.problems[1][1]
    assert (user_report.accepted, user_report.rejected) == (1, 1)
    keys = list(local_lake.list(RAW_CATALOG + "/"))
    assert [k.rsplit("/", 1)[1] for k in keys] == ["_manifest.json", "items.jsonl", "users.jsonl"]
    item = json.loads(local_lake.read_bytes(keys[1]))
    assert item["category"] == "home"
    assert item["attributes"] == {"categories": "home|lighting", "colour": "red"}
    assert json.loads(local_lake.read_bytes(keys[2]))["attributes"] == {"membership": "gold"}
    assert item_report.quarantine is not None
    assert [r["line"] for r in _quarantined(local_lake, item_report.quarantine)] == [3, 4]


def test_imported_history_is_curated_whatever_its_age(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    path = _write(
        tmp_path / "i.csv",
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n259,255,874724710,view\n259,286,874724727,view\n",
    )
    import_files(local_lake, interactions=path, now=NOW)
    report = run_etl(local_lake, now=NOW)
    assert (report.curated, report.quarantined) == (2, 0)
    assert report.event_dates == ["1997-09-20"]


def test_a_file_whose_every_row_is_refused_writes_only_the_quarantine(
    tmp_path: Path, local_lake: LocalLake
) -> None:
    path = _write(tmp_path / "i.csv", "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nU1,I1,x,view\n")
    [report] = import_files(local_lake, interactions=path, now=NOW)
    assert (report.accepted, report.rejected, report.objects) == (0, 1, [])
    assert local_lake.top_level() == {"quarantine"}


def test_id_keys_are_the_first_64_bits_of_each_uuid() -> None:
    ids = [uuid.uuid5(uuid.NAMESPACE_URL, str(i)) for i in range(500)] + [uuid.uuid4()]
    text = np.frombuffer(b"".join(str(i).encode() for i in ids), dtype=np.uint8)
    assert id_keys(text.reshape(-1, 36)).tolist() == [i.int >> 64 for i in ids]
    other = np.frombuffer(b"e-1".ljust(36, b"x") + str(ids[0]).upper().encode(), dtype=np.uint8)
    assert id_keys(other.reshape(-1, 36)).size == 0  # not ours: never a match


def test_a_kind_of_problem_drops_what_varies_and_keeps_the_messages_own_examples() -> None:
    timestamp = (
        "TIMESTAMP must be Unix seconds such as 1755369000 (milliseconds are told by their "
        "size), or RFC 3339 with a zone"
    )
    assert problem_kind(f"{timestamp} (got 'yesterday')") == timestamp
    assert problem_kind("row has 2 values for 7 columns") == "row has N values for N columns"
    assert problem_kind("EVENT_TYPE 'x' is not one of") == "EVENT_TYPE '…' is not one of"


@pytest.mark.aws
def test_files_are_read_from_s3_and_a_missing_object_is_named(
    tmp_path: Path, local_lake: LocalLake, aws_env: None
) -> None:
    """Personalize users keep their exports in S3 (issue 27, item 5)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="exports")
        body = gzip.compress(
            "\n".join(["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE", *_rows(12)]).encode()
        )
        s3.put_object(Bucket="exports", Key="shop/interactions.csv.gz", Body=body)
        s3.put_object(Bucket="exports", Key="shop/items.csv", Body=b"ITEM_ID,TITLE\nI1,Lamp\n")
        [events, items] = import_files(
            local_lake,
            interactions="s3://exports/shop/interactions.csv.gz",
            items="s3://exports/shop/items.csv",
            now=NOW,
        )
        assert (events.source, events.accepted) == ("s3://exports/shop/interactions.csv.gz", 13)
        assert (items.source, items.accepted) == ("s3://exports/shop/items.csv", 1)
        for url, message in [
            ("s3://exports/shop/nothing.csv", "s3://exports/shop/nothing.csv: no such object"),
            ("s3://elsewhere/x.csv", "s3://elsewhere/x.csv: no such object"),
            ("s3://exports/shop/", "name one object, as in s3://bucket/exports/file.csv"),
        ]:
            with pytest.raises(InvalidImportFile, match=re.escape(message)):
                import_files(local_lake, interactions=url, now=NOW)


def test_an_s3_object_the_credentials_may_not_read_is_named(
    local_lake: LocalLake, aws_env: None
) -> None:
    """S3 answers HeadObject without s3:GetObject with a bare 403 (no error body)."""
    import boto3
    from botocore.stub import Stubber

    s3 = boto3.client("s3")
    with Stubber(s3) as stub:
        stub.add_client_error(
            "head_object", service_error_code="403", service_message="Forbidden",
            http_status_code=403,
        )  # fmt: skip
        with pytest.raises(InvalidImportFile, match="access denied; the credentials in use"):
            import_files(local_lake, interactions="s3://exports/a.csv", now=NOW, s3=s3)
    assert local_lake.top_level() is None
