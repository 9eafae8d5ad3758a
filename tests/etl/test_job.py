"""The curation job end to end, on disk and on S3 under moto (with the Glue catalog)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime

import boto3
import pytest
from moto import mock_aws

from common.lake import LocalLake, S3Lake
from etl import state
from etl.errors import StateConflict
from etl.glue import GlueCatalog, GlueDatabaseMissing
from etl.job import run_etl
from ingestion.raw import event_object_key
from tests.etl_helpers import GOOD, NOW, PLANTED_BAD, content, curated_rows, plant_shop, snapshot


def test_a_run_curates_quarantines_and_dedupes(lake: LocalLake | S3Lake) -> None:
    planted = plant_shop(lake)
    report = run_etl(lake, now=NOW)

    copies = len(lake.read_bytes(planted.duplicate_object)) and report.duplicates
    assert report.read == report.curated + report.quarantined + report.duplicates
    assert report.curated == planted.events
    assert report.quarantined == len(PLANTED_BAD)
    assert copies > 0  # the redelivered object's events were all dropped
    rows = curated_rows(lake)
    assert len(rows) == planted.events
    assert len({r["event_id"] for r in rows}) == len(rows)
    assert all(r["event_date"] == r["ts"].date().isoformat() for r in rows)
    quarantine = content(lake)["quarantine"]
    assert [(q["source"], q["line"]) for q in quarantine] == [
        (planted.bad_object, n) for n in range(2, 2 + len(PLANTED_BAD))
    ]
    assert [q["problems"][0]["field"] for q in quarantine] == [f for _, f in PLANTED_BAD]
    assert [q["record"].encode() for q in quarantine] == [line for line, _ in PLANTED_BAD]
    assert list(lake.list("_state/etl/staging/")) == []
    assert report.items == 100
    assert report.users == 200


def test_a_second_run_with_nothing_new_changes_nothing(lake: LocalLake | S3Lake) -> None:
    plant_shop(lake)
    run_etl(lake, now=NOW)
    before = snapshot(lake)
    report = run_etl(lake, now=NOW)
    assert report.nothing_new
    assert snapshot(lake) == before


def test_new_objects_and_late_events_land_in_their_own_dates(lake: LocalLake | S3Lake) -> None:
    plant_shop(lake)
    first = run_etl(lake, now=NOW)
    old_files = {k: lake.read_bytes(k) for k in lake.list("curated/interactions/")}
    late = [
        {**GOOD, "event_id": "late-1", "ts": "2026-10-29T08:00:00Z"},
        {**GOOD, "event_id": "late-2", "ts": "2026-11-01T09:00:00Z"},
    ]
    key = event_object_key("firehose", datetime(2026, 11, 1, 10, tzinfo=UTC), "late")
    lake.write_bytes(key, "".join(json.dumps(e) + "\n" for e in late).encode())

    second = run_etl(lake, now=NOW)
    assert (second.raw_objects, second.curated, second.duplicates) == (1, 2, 0)
    assert second.event_dates == ["2026-10-29", "2026-11-01"]
    assert second.seq == first.seq + 1
    # Earlier files are untouched; the late event sits beside them in its own date.
    assert {k: lake.read_bytes(k) for k in old_files} == old_files
    dates = {r["event_id"]: r["event_date"] for r in curated_rows(lake)}
    assert dates["late-1"] == "2026-10-29"
    assert dates["late-2"] == "2026-11-01"


def test_padded_damaged_and_empty_gzip_objects_give_what_gzip_reads(
    lake: LocalLake | S3Lake,
) -> None:
    """Before: zero padding after the gzip data refused the object whole, and a zero-byte
    .gz counted as an object of 0 lines with no quarantine entry."""
    plant_shop(lake)
    run_etl(lake, now=NOW)
    events = [{**GOOD, "event_id": f"gz-{n}", "ts": "2026-11-01T09:00:00Z"} for n in range(6)]
    lines = ["".join(json.dumps(e) + "\n" for e in events[n : n + 2]).encode() for n in (0, 2, 4)]
    hour = datetime(2026, 11, 1, 12, tzinfo=UTC)
    padded, garbage, empty = (event_object_key("firehose", hour, name) for name in "abc")
    lake.write_bytes(padded, gzip.compress(lines[0]) + b"\0" * 4096)
    lake.write_bytes(garbage, gzip.compress(lines[1]) + b"\xff not gzip")
    lake.write_bytes(empty, b"")
    report = run_etl(lake, now=NOW)
    assert (report.raw_objects, report.read, report.curated) == (3, 4, 4)
    assert (report.unreadable_objects, report.damaged_objects) == (1, 1)
    ids = {r["event_id"] for r in curated_rows(lake)}
    assert {"gz-0", "gz-1", "gz-2", "gz-3"} <= ids
    quarantine = [q for q in content(lake)["quarantine"] if q["source"] in (garbage, empty)]
    assert [(q["source"], q["line"]) for q in quarantine] == [(garbage, 0), (empty, 0)]
    assert "10 bytes after its gzip data" in quarantine[0]["reason"]
    assert "empty (0 bytes)" in quarantine[1]["reason"]


def _as_raw(row: dict[str, object]) -> dict[str, object]:
    record = {k: v for k, v in row.items() if k not in ("event_date", "ts") and v is not None}
    return record | {"ts": row["ts"].isoformat()}  # type: ignore[attr-defined]


def test_a_replayed_object_adds_nothing(lake: LocalLake | S3Lake) -> None:
    plant_shop(lake)
    run_etl(lake, now=NOW)
    rows = curated_rows(lake)
    some = [r for r in rows if r["event_date"] == "2026-10-30"][:50]
    replay = "".join(json.dumps(_as_raw(r)) + "\n" for r in some)
    key = event_object_key("firehose", datetime(2026, 11, 1, 11, tzinfo=UTC), "replay")
    lake.write_bytes(key, replay.encode())
    report = run_etl(lake, now=NOW)
    assert (report.read, report.duplicates, report.curated) == (50, 50, 0)
    assert curated_rows(lake) == rows


def test_backfill_rereads_a_window_and_adds_only_what_is_missing(
    lake: LocalLake | S3Lake,
) -> None:
    planted = plant_shop(lake)
    # A producer's clock ran ahead: seen from an early `now`, the last day is in the future.
    early = datetime(2026, 10, 31, 6, tzinfo=UTC)
    first = run_etl(lake, now=early)
    assert first.quarantined > len(PLANTED_BAD)
    assert run_etl(lake, now=NOW).nothing_new  # nothing new to read: the bookmark holds

    backfill = run_etl(lake, now=NOW, since=date(2026, 10, 31), until=date(2026, 11, 1))
    assert backfill.curated == first.quarantined - len(PLANTED_BAD)
    assert backfill.duplicates > 0
    assert len(curated_rows(lake)) == planted.events
    assert backfill.raw_objects < first.raw_objects


def test_a_run_that_lost_the_race_commits_nothing(lake: LocalLake | S3Lake) -> None:
    plant_shop(lake)
    original = state.commit

    def racing_commit(
        target: LocalLake | S3Lake, bookmark: state.Bookmark, *, expected_seq: int
    ) -> None:
        target.write_bytes(state.BOOKMARK, state.Bookmark(seq=expected_seq + 1).to_json())
        original(target, bookmark, expected_seq=expected_seq)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(state, "commit", racing_commit)
        with pytest.raises(StateConflict, match="committed while this one worked"):
            run_etl(lake, now=NOW)
    assert list(lake.list("curated/")) == []


@pytest.mark.aws
def test_on_s3_the_tables_and_partitions_are_registered_in_glue(aws_env: None) -> None:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="shop-lake")
        lake = S3Lake("shop-lake", "prod", client=s3)
        plant_shop(lake)
        report = run_etl(lake, now=NOW, glue=GlueCatalog("recs_test", lake))
        glue = boto3.client("glue")
        tables = {t["Name"]: t for t in glue.get_tables(DatabaseName="recs_test")["TableList"]}
        assert set(tables) == {"interactions", "items", "users"}
        interactions = tables["interactions"]
        assert interactions["StorageDescriptor"]["Location"] == (
            "s3://shop-lake/prod/curated/interactions/"
        )
        columns = {c["Name"]: c["Type"] for c in interactions["StorageDescriptor"]["Columns"]}
        assert columns["ts"] == "timestamp"
        assert columns["quantity"] == "int"
        assert [k["Name"] for k in interactions["PartitionKeys"]] == ["event_date"]
        partitions = glue.get_partitions(DatabaseName="recs_test", TableName="interactions")
        values = sorted(p["Values"][0] for p in partitions["Partitions"])
        assert values == report.event_dates
        # A retried registration is harmless.
        GlueCatalog("recs_test", lake).register(report.event_dates)
        again = glue.get_partitions(DatabaseName="recs_test", TableName="interactions")
        assert len(again["Partitions"]) == len(values)
        # A table made before a column was added gains it, keeping its partitions.
        old = glue.get_table(DatabaseName="recs_test", Name="interactions")["Table"]
        descriptor = old["StorageDescriptor"]
        descriptor["Columns"] = [
            c for c in descriptor["Columns"] if c["Name"] != "recommendation_id"
        ]
        glue.update_table(
            DatabaseName="recs_test",
            TableInput={
                "Name": "interactions",
                "StorageDescriptor": descriptor,
                "PartitionKeys": old["PartitionKeys"],
                "TableType": old["TableType"],
                "Parameters": old["Parameters"],
            },
        )
        GlueCatalog("recs_test", lake).register(report.event_dates)
        table = glue.get_table(DatabaseName="recs_test", Name="interactions")["Table"]
        names = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
        assert names[-1] == "recommendation_id"
        kept = glue.get_partitions(DatabaseName="recs_test", TableName="interactions")
        assert len(kept["Partitions"]) == len(values)


@pytest.mark.aws
def test_the_etl_leaves_terraforms_glue_database_alone(aws_env: None) -> None:
    """Terraform owns the database; the steps' role may not UpdateDatabase (an AWS denial)."""
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="shop-lake")
        lake = S3Lake("shop-lake", "prod", client=s3)
        plant_shop(lake)
        glue = boto3.client("glue")
        glue.create_database(DatabaseInput={"Name": "recs_test", "Description": "Terraform's"})
        session = boto3.Session()
        called: list[str] = []
        session.events.register("before-call.glue", lambda model, **_: called.append(model.name))
        run_etl(lake, now=NOW, glue=GlueCatalog("recs_test", lake, session=session))
        database = glue.get_database(Name="recs_test")["Database"]
        assert database["Description"] == "Terraform's"
        assert "UpdateDatabase" not in called
        assert "CreateDatabase" not in called
        assert "CreateTable" in called  # the ETL's own part


@pytest.mark.aws
def test_a_missing_glue_database_is_created_once_and_a_denial_says_what_to_do(
    aws_env: None,
) -> None:
    """A shop with no Terraform gets the database made; a role that may not make it is told
    which database to create or name."""
    from botocore.stub import Stubber

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="shop-lake")
        lake = S3Lake("shop-lake", "prod", client=s3)
        GlueCatalog("recs_new", lake).register([])
        assert boto3.client("glue").get_database(Name="recs_new")["Database"]["Name"] == "recs_new"

        denied = boto3.client("glue")
        with Stubber(denied) as stub:
            stub.add_client_error(
                "get_database", "EntityNotFoundException", "Database recs_other not found.", 400
            )
            stub.add_client_error(
                "create_database", "AccessDeniedException",
                "User: arn:aws:sts::123456789012:assumed-role/steps is not authorized to "
                "perform: glue:CreateDatabase", 400,
            )  # fmt: skip
            catalog = GlueCatalog("recs_other", lake)
            with pytest.raises(GlueDatabaseMissing, match="RECS_GLUE_DATABASE") as caught:
                catalog.ensure_database(denied)
        assert "recs_other" in str(caught.value)
