"""`recs sql`'s views over a lake on disk and over S3 (moto's server: real HTTP)."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.lake import Lake, LocalLake, S3Lake
from etl.errors import CuratedZoneEmpty
from etl.job import run_etl
from etl.sql import connect
from ingestion.raw import event_object_key, gzip_bytes
from tests.etl_helpers import NOW, curated_rows, plant_shop

QUERY = "SELECT event_date, count(*) FROM interactions GROUP BY 1 ORDER BY 1"


def test_views_on_disk(local_lake: LocalLake) -> None:
    with pytest.raises(CuratedZoneEmpty, match="run `recs etl`"):
        connect(local_lake)
    plant_shop(local_lake)
    run_etl(local_lake, now=NOW)
    con = connect(local_lake)
    rows = curated_rows(local_lake)
    assert sum(n for _, n in con.sql(QUERY).fetchall()) == len(rows)
    assert con.execute("SELECT count(*) FROM items").fetchone() == (100,)
    assert con.execute("SELECT count(*) FROM users").fetchone() == (200,)


@pytest.mark.aws
def test_views_on_s3_through_pyarrow(s3_server: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="shop-lake")
    lake = S3Lake("shop-lake", "prod", client=s3)
    plant_shop(lake)
    run_etl(lake, now=NOW)
    con = connect(lake)
    local_total = len(curated_rows(lake))
    assert sum(n for _, n in con.sql(QUERY).fetchall()) == local_total
    assert con.execute("SELECT count(*) FROM items WHERE active").fetchone() == (100,)
    assert con.execute("SELECT typeof(event_date) FROM interactions LIMIT 1").fetchone() == (
        "DATE",
    )


def _strip_recommendation_id(lake: Lake) -> None:
    """Make the curated files look as the first release wrote them."""
    for key in lake.list("curated/interactions/"):
        old = pq.read_table(pa.BufferReader(lake.read_bytes(key))).drop_columns(
            ["recommendation_id"]
        )
        sink = pa.BufferOutputStream()
        pq.write_table(old, sink)
        lake.write_bytes(key, sink.getvalue().to_pybytes())


def _files_from_before_recommendation_id(lake: Lake) -> None:
    """Curate a shop, strip the newer column from its files, then curate clicks on
    recommendations that carry it."""
    plant_shop(lake)
    run_etl(lake, now=NOW)
    _strip_recommendation_id(lake)
    # Before any file has the column, it reads as null too.
    assert connect(lake).execute(CLICKS).fetchone() == (_rows_in_files(lake), 0, None)
    clicks = [
        {"event_id": f"click-{i}", "user_id": "U1", "item_id": "I1", "event_type": "view",
         "ts": "2026-10-31T12:00:00Z", "recommendationId": f"rid-{i}"}
        for i in range(3)
    ]  # fmt: skip
    body = "".join(json.dumps(c) + "\n" for c in clicks).encode()
    key = event_object_key("recs-events", NOW - timedelta(hours=1), "clicks")
    lake.write_bytes(key, gzip_bytes(body))
    run_etl(lake, now=NOW)


CLICKS = "SELECT count(*), count(recommendation_id), min(recommendation_id) FROM interactions"


def _rows_in_files(lake: Lake) -> int:
    return sum(
        pq.read_metadata(pa.BufferReader(lake.read_bytes(key))).num_rows
        for key in lake.list("curated/interactions/")
    )


def test_files_from_before_a_column_was_added_read_it_as_null(local_lake: LocalLake) -> None:
    _files_from_before_recommendation_id(local_lake)
    total = _rows_in_files(local_lake)
    assert connect(local_lake).execute(CLICKS).fetchone() == (total, 3, "rid-0")


@pytest.mark.aws
def test_files_from_before_a_column_was_added_read_it_as_null_on_s3(s3_server: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="shop-lake")
    lake = S3Lake("shop-lake", "prod", client=s3)
    _files_from_before_recommendation_id(lake)
    total = _rows_in_files(lake)
    assert connect(lake).execute(CLICKS).fetchone() == (total, 3, "rid-0")
