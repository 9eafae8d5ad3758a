"""`train` on a curated shop: artifacts, manifest, and Personalize's batch output format."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import numpy as np
import pytest

from common.lake import LocalLake, S3Lake
from tests.etl_helpers import curated_training_shop
from training.errors import NotEnoughData
from training.metrics import METRIC_NAMES
from training.pipeline import SERVED, TrainOptions, train
from training.tuning import SELECT_ON

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
    report = train(shop, TrainOptions(seed=3), now=NOW)
    prefix = f"models/{report.version}"
    manifest = json.loads(shop.read_bytes(f"{prefix}/manifest.json"))
    assert manifest["chosen_label"] == report.chosen
    assert report.tuning is not None
    assert manifest["blend"] == report.tuning.blend.to_json()
    tuning = manifest["tuning"]
    # What was tried, each with its validation score, and what was chosen from it.
    assert {t["recipe"].split()[0] for t in tuning["tried"]} >= {"item-knn", "ease", "als"}
    assert all("discovery_ndcg10" in t and "half_life_days" in t for t in tuning["tried"])
    assert tuning[SELECT_ON] > 0
    assert tuning["half_life_days"] == manifest["half_life_days"]
    assert set(manifest["metrics"]) >= {SERVED, "popularity-count", "trending"}
    assert all(list(m) == list(METRIC_NAMES) for m in manifest["metrics"].values())
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
    batch = manifest["batch_users"]
    assert len(users) == batch["served"]
    assert batch["served"] + batch["left_to_popular"] == manifest["data"]["users"]
    first = users[0]
    assert set(first) == {"input", "output", "error"}
    assert first["error"] is None
    assert set(first["input"]) == {"userId"}
    assert len(first["output"]["recommendedItems"]) == len(first["output"]["scores"]) == 25
    assert first["output"]["scores"] == sorted(first["output"]["scores"], reverse=True)
    assert all(s > 0 for u in users for s in u["output"]["scores"])
    items = shop.read_bytes(f"batch/{report.version}/items.jsonl").splitlines()
    related = json.loads(items[0])
    assert set(related["input"]) == {"itemId"}
    assert related["input"]["itemId"] not in related["output"]["recommendedItems"]


def test_the_same_seed_gives_the_same_model(shop: LocalLake | S3Lake) -> None:
    # No time budget: a slow machine must not skip candidates the other run tried.
    one = train(shop, TrainOptions(seed=9, budget_s=1e9), now=NOW)
    two = train(shop, TrainOptions(seed=9, budget_s=1e9), now=datetime(2026, 11, 3, tzinfo=UTC))
    assert one.metrics == two.metrics
    a = shop.read_bytes(f"batch/{one.version}/users.jsonl")
    b = shop.read_bytes(f"batch/{two.version}/users.jsonl")
    assert a == b


@pytest.mark.parametrize(
    ("repeats", "left_out"),
    [
        ("exclude-seen", "SELECT user_id, item_id FROM interactions"),
        (
            "exclude-purchased",
            "SELECT user_id, item_id FROM interactions WHERE event_type = 'purchase'",
        ),
    ],
)
def test_a_pinned_repeat_policy_holds_in_the_batch_output(
    shop: LocalLake | S3Lake, repeats: str, left_out: str
) -> None:
    from etl.sql import connect

    report = train(shop, TrainOptions(repeats=repeats, recipe="item-knn", half_life=None), now=NOW)
    assert report.tuning is not None
    assert report.tuning.blend.repeats == repeats
    assert report.tuning.half_life_days is None
    con = connect(shop)  # type: ignore[arg-type]
    excluded = {(u, i) for u, i in con.execute(left_out).fetchall()}
    lines = shop.read_bytes(f"batch/{report.version}/users.jsonl").splitlines()
    assert lines
    for line in lines:
        record = json.loads(line)
        user = record["input"]["userId"]
        assert not any((user, item) in excluded for item in record["output"]["recommendedItems"])


def test_a_named_recipe_is_served(shop: LocalLake | S3Lake) -> None:
    """Before, `--recipe als` on this shop served "history and trending": blend tuning
    dropped the recipe the user had asked for, and no ALS arrays were written."""
    report = train(shop, TrainOptions(recipe="als", half_life=None), now=NOW)
    assert report.chosen.startswith("als"), report.chosen
    assert report.tuning is not None
    assert report.tuning.blend.collab == 1.0
    assert any(key.endswith("/user-personalization.npz") for key in report.files), report.files


def test_a_skipped_recipe_is_named_on_screen_with_why(shop: LocalLake | S3Lake) -> None:
    """Before, why a recipe was skipped was only in manifest.json (issue 27, item 6)."""
    lines: list[str] = []
    report = train(shop, TrainOptions(budget_s=0, half_life=None), now=NOW, progress=lines.append)
    assert report.tuning is not None
    assert report.tuning.skipped
    for why in report.tuning.skipped:
        assert f"  skipped {why}" in lines, (why, lines)
    assert any("the 0 s tuning budget was spent" in line for line in lines)


def test_training_without_curated_data_says_what_to_run(local_lake: LocalLake) -> None:
    from etl.errors import CuratedZoneEmpty

    with pytest.raises(CuratedZoneEmpty, match="run `recs etl`"):
        train(local_lake, now=NOW)


def test_a_training_window_reads_and_fits_only_its_last_days(shop: LocalLake) -> None:
    """A big shop cannot hold all of history every night (issue 24); the window bounds what
    is read, and a full-history run (the weekly one) ignores it."""
    from datetime import date

    from training.data import load_events
    from training.settings import TrainingSettings
    from training.trainer import LocalTrainer, trainer_for

    everything = load_events(shop)
    recent = load_events(shop, since=date(2026, 10, 25))
    assert everything.since is None
    assert 0 < len(recent) < len(everything)
    assert recent.ts_ms.min() >= datetime(2026, 10, 25, tzinfo=UTC).timestamp() * 1000
    with pytest.raises(NotEnoughData, match="RECS_TRAIN_WINDOW_DAYS"):
        load_events(shop, since=date(2027, 1, 1))

    report = train(shop, TrainOptions(seed=3, window_days=8), now=NOW)
    manifest = json.loads(shop.read_bytes(f"models/{report.version}/manifest.json"))
    assert manifest["data"]["window_since"] == "2026-10-25"
    assert manifest["data"]["events"] == len(recent)

    settings = TrainingSettings.from_env({"RECS_TRAIN_WINDOW_DAYS": "8"})
    assert trainer_for("local", settings) == LocalTrainer(8)
    assert trainer_for("local", settings, full_history=True) == LocalTrainer(None)
