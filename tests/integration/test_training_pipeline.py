"""`train` on a curated shop: artifacts, manifest, and Personalize's batch output format."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import numpy as np
import pytest

from ingestion.lake import LocalLake, S3Lake
from tests.etl_helpers import curated_training_shop
from training.metrics import METRIC_NAMES
from training.pipeline import SELECT_ON, train

NOW = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture
def shop(local_lake: LocalLake) -> LocalLake:
    curated_training_shop(local_lake)
    return local_lake


@pytest.mark.aws
def test_train_reads_and_writes_an_s3_lake(s3_server: str) -> None:
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="shop-lake")
    lake = S3Lake("shop-lake", "prod", client=s3)
    curated_training_shop(lake)
    report = train(lake, now=NOW)
    assert lake.exists(f"models/{report.version}/manifest.json")
    assert lake.exists(f"batch/{report.version}/users.jsonl")


def test_train_writes_a_version_with_its_evidence(shop: LocalLake | S3Lake) -> None:
    report = train(shop, seed=3, now=NOW)
    prefix = f"models/{report.version}"
    manifest = json.loads(shop.read_bytes(f"{prefix}/manifest.json"))
    assert manifest["chosen"] == report.chosen
    contenders = {"item-knn", "ease", "als"}
    assert set(manifest["metrics"]) == contenders | {"popularity-count", "trending"}
    assert all(list(m) == list(METRIC_NAMES) for m in manifest["metrics"].values())
    best = max(contenders, key=lambda name: manifest["metrics"][name][SELECT_ON])
    assert report.chosen == best
    assert manifest["data"]["events"] == 20_000
    assert manifest["seed"] == 3
    assert {"numpy", "implicit", "scipy"} <= set(manifest["libraries"])
    for name in manifest["artifacts"]:
        arrays = np.load(io.BytesIO(shop.read_bytes(f"{prefix}/{name}")), allow_pickle=False)
        assert arrays.files
    assert shop.read_bytes(f"{prefix}/report.png").startswith(b"\x89PNG")
    report_text = shop.read_bytes(f"{prefix}/report.md").decode()
    assert f"**{report.chosen}**" in report_text
    assert "| popularity-count |" in report_text
    ids = np.load(io.BytesIO(shop.read_bytes(f"{prefix}/ids.npz")), allow_pickle=False)
    assert len(ids["item_ids"]) <= 150

    users = [
        json.loads(line)
        for line in shop.read_bytes(f"batch/{report.version}/users.jsonl").splitlines()
    ]
    assert len(users) == manifest["data"]["users"]
    first = users[0]
    assert set(first) == {"input", "output", "error"}
    assert first["error"] is None
    assert set(first["input"]) == {"userId"}
    assert len(first["output"]["recommendedItems"]) == len(first["output"]["scores"]) == 25
    assert first["output"]["scores"] == sorted(first["output"]["scores"], reverse=True)
    items = shop.read_bytes(f"batch/{report.version}/items.jsonl").splitlines()
    related = json.loads(items[0])
    assert set(related["input"]) == {"itemId"}
    assert related["input"]["itemId"] not in related["output"]["recommendedItems"]


def test_the_same_seed_gives_the_same_model(shop: LocalLake | S3Lake) -> None:
    one = train(shop, seed=9, now=NOW)
    two = train(shop, seed=9, now=datetime(2026, 11, 3, tzinfo=UTC))
    assert one.metrics == two.metrics
    a = shop.read_bytes(f"models/{one.version}/user-personalization.npz")
    b = shop.read_bytes(f"models/{two.version}/user-personalization.npz")
    assert a == b


def test_purchased_items_are_left_out_of_batch_recommendations(shop: LocalLake | S3Lake) -> None:
    from etl.sql import connect

    report = train(shop, now=NOW)
    con = connect(shop)  # type: ignore[arg-type]
    bought = {
        (u, i)
        for u, i in con.execute(
            "SELECT user_id, item_id FROM interactions WHERE event_type = 'purchase'"
        ).fetchall()
    }
    for line in shop.read_bytes(f"batch/{report.version}/users.jsonl").splitlines():
        record = json.loads(line)
        user = record["input"]["userId"]
        assert not any((user, item) in bought for item in record["output"]["recommendedItems"])


def test_training_without_curated_data_says_what_to_run(local_lake: LocalLake) -> None:
    from etl.errors import CuratedZoneEmpty

    with pytest.raises(CuratedZoneEmpty, match="run `recs etl`"):
        train(local_lake, now=NOW)
