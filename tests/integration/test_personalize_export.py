"""Personalize import files: exact columns and schemas, and the documented minimums."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from etl.errors import DataQualityError
from etl.job import run_etl
from etl.personalize import export_personalize, imported_through, mark_imported
from ingestion.lake import LocalLake
from tests.etl_helpers import NOW, curated_rows, plant_shop


def _csv(lake: LocalLake, key: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(lake.read_bytes(key).decode())))


def test_export_writes_personalize_csvs_and_schemas(local_lake: LocalLake) -> None:
    plant_shop(local_lake)
    run_etl(local_lake, now=NOW)
    report = export_personalize(local_lake, run="r1")
    prefix = "exports/personalize/r1"
    assert sorted(report.files) == sorted(
        [f"{prefix}/export.json"]
        + [
            f"{prefix}/{name}.{kind}"
            for name in ("interactions", "items", "users")
            for kind in ("csv", "schema.json")
        ]
    )
    assert report.mode == "FULL"
    interactions = _csv(local_lake, f"{prefix}/interactions.csv")
    assert list(interactions[0]) == ["USER_ID", "ITEM_ID", "EVENT_TYPE", "TIMESTAMP"]
    rows = curated_rows(local_lake)
    assert len(interactions) == len(rows) == report.interactions
    first = min(rows, key=lambda r: (r["ts"], r["event_id"]))
    assert interactions[0] == {
        "USER_ID": first["user_id"],
        "ITEM_ID": first["item_id"],
        "EVENT_TYPE": first["event_type"],
        "TIMESTAMP": str(int(first["ts"].timestamp())),  # epoch seconds
    }
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
    exported = _csv(local_lake, "exports/personalize/night/interactions.csv")
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
