"""`recs publish` and the promotion gate, across two nightly runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from etl.job import run_etl
from etl.sql import connect
from ingestion.lake import LocalLake
from ingestion.raw import event_object_key
from serving.publish import publish
from serving.store import SQLiteStore
from tests.etl_helpers import curated_training_shop
from training.artifacts import PRODUCTION
from training.errors import ModelNotFound, ModelRejected
from training.evaluate import evaluate_version
from training.gate import decide
from training.pipeline import train

END = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def shop(local_lake: LocalLake) -> LocalLake:
    curated_training_shop(local_lake)
    return local_lake


def _next_day(lake: LocalLake) -> None:
    """Another day of traffic: yesterday's events again, a day later, with new ids."""
    rows = (
        connect(lake)
        .execute(
            "SELECT user_id, item_id, event_type, ts FROM interactions "
            "WHERE ts >= TIMESTAMPTZ '2026-10-31 00:00:00+00'"
        )
        .fetchall()
    )
    lines = [
        json.dumps(
            {
                "event_id": f"day2-{n}",
                "user_id": u,
                "item_id": i,
                "event_type": e,
                "ts": (ts + timedelta(days=1)).isoformat(),
            }
        )
        for n, (u, i, e, ts) in enumerate(rows)
    ]
    key = event_object_key("firehose", END + timedelta(days=1), "day2", compressed=False)
    lake.write_bytes(key, ("\n".join(lines) + "\n").encode())
    run_etl(lake, now=END + timedelta(days=2))


def test_publish_then_the_next_run_is_gated_against_production(
    shop: LocalLake, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "store.sqlite3")
    first = train(shop, now=END)
    assert first.approved
    report = publish(shop, store, first.version)
    assert store.active_version() == first.version
    assert report.users > 0
    assert report.items > 0
    user = json.loads(shop.read_bytes(f"batch/{first.version}/users.jsonl").splitlines()[0])
    found = store.recommendations("user", user["input"]["userId"], first.version)
    items, _scores = found or ([], [])
    assert items == user["output"]["recommendedItems"]
    assert json.loads(shop.read_bytes(PRODUCTION))["version"] == first.version

    _next_day(shop)
    second = train(shop, now=END + timedelta(days=2))
    assert second.gate is not None
    assert second.gate.production_version == first.version
    assert second.gate.production is not None
    assert f"production {first.version}" in second.metrics
    manifest = json.loads(shop.read_bytes(f"models/{second.version}/manifest.json"))
    assert manifest["gate"]["production_version"] == first.version
    assert manifest["status"] == ("approved" if second.gate.passed else "candidate")

    # Production, scored on the new day it never saw, recorded in its manifest.
    result = evaluate_version(shop)
    assert result.version == first.version
    assert result.unseen_only
    assert result.metrics["normalized_discounted_cumulative_gain_at_10"] > 0
    evaluations = json.loads(shop.read_bytes(f"models/{first.version}/manifest.json"))[
        "evaluations"
    ]
    assert evaluations[-1]["metrics"] == result.metrics


def test_a_candidate_is_refused_unless_forced(shop: LocalLake, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.sqlite3")
    version = train(shop, now=END).version
    key = f"models/{version}/manifest.json"
    manifest = json.loads(shop.read_bytes(key))
    manifest["status"] = "candidate"
    manifest["gate"]["reasons"] = ["does not beat production"]
    shop.write_bytes(key, json.dumps(manifest).encode())
    with pytest.raises(ModelRejected, match="candidate, not approved: does not beat production"):
        publish(shop, store, version)
    assert store.active_version() is None
    assert publish(shop, store, version, force=True).forced
    assert store.active_version() == version


def test_only_the_live_and_previous_versions_stay_in_the_store(
    shop: LocalLake, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "store.sqlite3")
    versions = [train(shop, now=END + timedelta(hours=h)).version for h in range(3)]
    dropped = [publish(shop, store, v, force=True).dropped for v in versions]
    assert dropped == [[], [], [versions[0]]]
    assert json.loads(shop.read_bytes(PRODUCTION))["history"] == versions[1:]


def test_the_gate_needs_both_popularity_and_production_beaten() -> None:
    metric = "ndcg"
    passed = decide(metric, {metric: 0.2}, {metric: 0.1}, {metric: 0.15}, "v1")
    assert passed.passed
    assert "beats popularity-count (0.1000) and production v1 (0.1500)" in passed.reasons[0]
    worse = decide(metric, {metric: 0.12}, {metric: 0.1}, {metric: 0.15}, "v1")
    assert not worse.passed
    assert "does not beat production v1's 0.1500" in worse.reasons[0]
    weak = decide(metric, {metric: 0.09}, {metric: 0.1}, None, None)
    assert not weak.passed
    assert weak.reasons == ["ndcg 0.0900 does not beat popularity-count's 0.1000"]


def test_publishing_nothing_says_what_to_run(local_lake: LocalLake, tmp_path: Path) -> None:
    with pytest.raises(ModelRejected, match="run `recs train` first"):
        publish(local_lake, SQLiteStore(tmp_path / "s.sqlite3"))
    with pytest.raises(ModelNotFound, match="no version given and none in production"):
        evaluate_version(local_lake)
    with pytest.raises(ModelNotFound, match="no model version nope under models/"):
        evaluate_version(local_lake, "nope")
