"""`recs sql`'s views over a lake on disk and over S3 (moto's server: real HTTP)."""

from __future__ import annotations

import boto3
import pytest

from etl.errors import CuratedZoneEmpty
from etl.job import run_etl
from etl.sql import connect
from ingestion.lake import LocalLake, S3Lake
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
