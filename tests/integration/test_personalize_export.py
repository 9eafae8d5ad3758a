"""Personalize import files: exact columns and schemas, and the documented minimums."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from etl.errors import DataQualityError
from etl.job import run_etl
from etl.personalize import export_personalize
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
        f"{prefix}/{name}.{kind}"
        for name in ("interactions", "items", "users")
        for kind in ("csv", "schema.json")
    )
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
