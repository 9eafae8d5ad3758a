"""Personalize import files: exact columns and schemas, and the documented minimums."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.lake import LocalLake
from etl.errors import DataQualityError
from etl.job import run_etl
from etl.personalize import export_personalize, imported_through, mark_imported
from tests.etl_helpers import NOW, curated_rows, plant_shop


def _csv(lake: LocalLake, key: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(lake.read_bytes(key).decode())))


def test_export_writes_personalize_csvs_and_schemas(local_lake: LocalLake) -> None:
    plant_shop(local_lake)
    run_etl(local_lake, now=NOW)
    report = export_personalize(local_lake, run="r1")
    prefix = "exports/personalize/r1"
    assert sorted(report.files) == sorted(
        [f"{prefix}/export.json", f"{prefix}/interactions/part-00000.csv"]
        + [f"{prefix}/{name}.schema.json" for name in ("interactions", "items", "users")]
        + [f"{prefix}/{name}.csv" for name in ("items", "users")]
    )
    assert report.mode == "FULL"
    assert report.interaction_parts == ["interactions/part-00000.csv"]  # a small shop: one
    interactions = _csv(local_lake, f"{prefix}/interactions/part-00000.csv")
    assert list(interactions[0]) == ["USER_ID", "ITEM_ID", "EVENT_TYPE", "TIMESTAMP"]
    rows = curated_rows(local_lake)
    assert len(interactions) == len(rows) == report.interactions
    expected = sorted(
        (r["user_id"], r["item_id"], r["event_type"], str(int(r["ts"].timestamp())))  # epoch s
        for r in rows
    )
    assert sorted(tuple(r.values()) for r in interactions) == expected  # in any order
    schema = json.loads(local_lake.read_bytes(f"{prefix}/interactions.schema.json"))
    assert schema["type"] == "record"
    assert schema["namespace"] == "com.amazonaws.personalize.schema"
    assert [f["name"] for f in schema["fields"]] == list(interactions[0])
    assert {f["name"]: f["type"] for f in schema["fields"]}["TIMESTAMP"] == "long"

    items = _csv(local_lake, f"{prefix}/items.csv")
    item_schema = json.loads(local_lake.read_bytes(f"{prefix}/items.schema.json"))
    assert [f["name"] for f in item_schema["fields"]] == list(items[0])
    categorical = {f["name"] for f in item_schema["fields"] if f.get("categorical")}
    assert categorical == {"CATEGORY", "BRAND", "ACTIVE"}
    created = datetime.fromtimestamp(int(items[0]["CREATION_TIMESTAMP"]), UTC)
    assert created.year >= 2025
    users = _csv(local_lake, f"{prefix}/users.csv")
    assert list(users[0]) == ["USER_ID", "REGION"]
    assert len(users) == report.users == 200


def test_a_shop_below_personalizes_minimums_is_refused(local_lake: LocalLake) -> None:
    plant_shop(local_lake, events=500, days=2)
    run_etl(local_lake, now=NOW)
    with pytest.raises(
        DataQualityError, match=r"at least 1000 interactions; the curated zone has 50\d"
    ):
        export_personalize(local_lake, run="small")
    assert list(local_lake.list("exports/")) == []


def test_a_nightly_export_holds_only_the_days_after_the_last_import(local_lake: LocalLake) -> None:
    """Re-importing all of history every night costs a big shop hours and ~$260 a month."""
    from datetime import date, timedelta

    plant_shop(local_lake, events=6000, days=4)
    run_etl(local_lake, now=NOW)
    days = sorted({r["event_date"] for r in curated_rows(local_lake)})
    assert export_personalize(local_lake, run="first", incremental=True).mode == "FULL"
    assert imported_through(local_lake) is None  # the export alone moves nothing

    mark_imported(local_lake, date.fromisoformat(days[-2]))  # training's import finished
    nightly = export_personalize(local_lake, run="night", incremental=True)
    assert (nightly.mode, str(nightly.since), str(nightly.through)) == (
        "INCREMENTAL",
        days[-2],
        days[-1],
    )
    exported = _csv(local_lake, "exports/personalize/night/interactions/part-00000.csv")
    newer = [r for r in curated_rows(local_lake) if r["event_date"] >= days[-2]]
    assert len(exported) == len(newer) == nightly.interactions
    described = json.loads(local_lake.read_bytes("exports/personalize/night/export.json"))
    assert described["mode"] == "INCREMENTAL"
    assert len(_csv(local_lake, "exports/personalize/night/items.csv")) == nightly.items  # whole

    # The last imported day goes again (its late events; Personalize keeps one of each
    # identical interaction). Too few rows for an import job: the whole history instead.
    mark_imported(local_lake, date.fromisoformat(days[-1]) + timedelta(days=1))
    again = export_personalize(local_lake, run="quiet", incremental=True)
    assert again.mode == "FULL"
    assert "fewer than an import job's minimum" in again.warnings[0]


def test_a_day_over_an_import_jobs_gigabyte_is_streamed_into_parts(
    local_lake: LocalLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big shop's day is 1.4 GB; an INCREMENTAL import job takes 1 GB, and a week is more
    than a Lambda's /tmp. Each part must fit, keep the header and hold at least an import
    job's minimum of rows; together they hold every interaction once; and the disk never
    holds more than two parts."""
    plant_shop(local_lake, events=6000, days=4)
    run_etl(local_lake, now=NOW)
    whole = export_personalize(local_lake, run="whole")
    size = whole.interaction_bytes
    on_disk: list[int] = []
    upload = LocalLake.upload

    def counting(lake: LocalLake, key: str, path: Path) -> None:
        if "/interactions/" in key:  # the parts' folder, and the export's folder above it
            on_disk.append(len([*path.parent.glob("*.csv"), *path.parent.parent.glob("*.csv")]))
        upload(lake, key, path)

    monkeypatch.setattr(LocalLake, "upload", counting)
    report = export_personalize(local_lake, run="cut", part_bytes=size // 3)
    prefix = "exports/personalize/cut"
    assert len(report.interaction_parts) in (3, 4)
    assert max(on_disk) <= 2  # two parts at most, no whole file
    rows: list[dict[str, str]] = []
    for part in report.interaction_parts:
        data = local_lake.read_bytes(f"{prefix}/{part}")
        assert data.startswith(b"USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\n")
        found = _csv(local_lake, f"{prefix}/{part}")
        assert len(found) >= 1000
        # Only the last may pass the size asked for, by a tail under 1,000 rows.
        if part != report.interaction_parts[-1]:
            assert len(data) <= size // 3
        rows += found
    expected = _csv(local_lake, "exports/personalize/whole/interactions/part-00000.csv")
    assert sorted(map(tuple, (r.values() for r in rows))) == sorted(
        map(tuple, (r.values() for r in expected))
    )
    assert report.interaction_bytes == sum(
        len(local_lake.read_bytes(f"{prefix}/{p}")) for p in report.interaction_parts
    )
    described = json.loads(local_lake.read_bytes(f"{prefix}/export.json"))
    assert described["interaction_parts"] == report.interaction_parts
    # Never under an import job's minimum, whatever the part size asked for.
    tiny = export_personalize(local_lake, run="tiny", part_bytes=1000)
    assert 2 <= len(tiny.interaction_parts) <= report.interactions // 1000
    for part in tiny.interaction_parts:
        assert len(_csv(local_lake, f"exports/personalize/tiny/{part}")) >= 1000
    with pytest.raises(DataQualityError, match="RECS_PERSONALIZE_PART_MB to 990 or less"):
        export_personalize(local_lake, run="big", part_bytes=995 * 10**6)


def test_a_value_with_a_comma_or_quote_is_quoted(tmp_path: Path) -> None:
    """Bare values, as DuckDB writes them, unless a value needs quotes (a shop's ids are
    its own)."""
    import pyarrow as pa

    from etl.personalize import write_parts

    plain = pa.record_batch({"USER_ID": ["U1", "U2"], "TIMESTAMP": pa.array([1, 2], pa.int64())})
    odd = pa.record_batch({"USER_ID": ['a,"b"'], "TIMESTAMP": pa.array([3], pa.int64())})
    ((path, rows, _),) = write_parts(
        [plain, odd], ["USER_ID", "TIMESTAMP"], tmp_path, max_bytes=10**6, min_rows=1
    )
    assert rows == 3
    assert path.read_bytes() == b'USER_ID,TIMESTAMP\nU1,1\nU2,2\n"a,""b""",3\n'
    assert list(csv.reader(io.StringIO(path.read_text())))[3] == ['a,"b"', "3"]


def test_the_export_works_within_its_memory_limit(local_lake: LocalLake) -> None:
    """DuckDB spills to the export's own temporary folder (a Lambda's working folder is
    read-only), so a small limit still exports everything."""
    plant_shop(local_lake, events=6000, days=4)
    run_etl(local_lake, now=NOW)
    report = export_personalize(local_lake, run="lean", memory_mb=64)
    rows = _csv(local_lake, "exports/personalize/lean/interactions/part-00000.csv")
    assert len(rows) == report.interactions
