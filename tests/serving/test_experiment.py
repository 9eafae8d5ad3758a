"""An A/B experiment end to end: the candidate's rows beside production's, its share of
shoppers answered by it over real HTTP, ids that name the version, publishes held while it
runs, and both ways it ends."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from common.lake import LocalLake
from serving.errors import ExperimentRefused, ExperimentRunning
from serving.experiment import (
    Experiment,
    recommendation_id,
    records,
    running,
    share_of,
    version_of,
)
from serving.experiment_control import start, stop
from serving.publish import publish
from serving.store import SQLiteStore
from tests.etl_helpers import NOW
from tests.serving_helpers import (
    PublishedShop,
    get_json,
    published_shop,
    services_for,
    serving,
)
from training.pipeline import TrainOptions, train
from training.registry import ProductionPointer


def _experiment(share: float, salt: str = "exp-1") -> Experiment:
    return Experiment(salt, "v2", "v1", share, "2026-11-02T00:00:00.000Z")


def test_a_shoppers_arm_is_stable_near_the_share_and_new_with_each_experiment() -> None:
    users = [f"U{n}" for n in range(20_000)]
    first = _experiment(0.1)
    chosen = {u for u in users if first.assigned(u)}
    assert 0.09 < len(chosen) / len(users) < 0.11
    assert chosen == {u for u in users if _experiment(0.1).assigned(u)}  # stable
    # A wider share keeps everyone the narrower one had: growing it moves nobody back.
    assert chosen <= {u for u in users if _experiment(0.3).assigned(u)}
    other = {u for u in users if _experiment(0.1, "exp-2").assigned(u)}
    assert 0.005 < len(chosen & other) / len(users) < 0.015  # independent: about 0.1 * 0.1
    assert all(0 <= share_of(u, "x") < 1 for u in users[:100])


def test_a_recommendation_id_names_its_version() -> None:
    rid = recommendation_id("20261102T000000Z")
    assert version_of(rid) == "20261102T000000Z"
    assert len(rid) == 36 + 1 + 16
    assert rid != recommendation_id("20261102T000000Z")
    assert version_of("RID-1234-personalize") is None
    assert version_of(None) is None
    assert version_of("abc@") is None


def test_an_experiment_read_back_is_checked() -> None:
    body = _experiment(0.2).body()
    assert Experiment.of(body) == _experiment(0.2)
    for broken in ({**body, "share": 1.5}, {**body, "metric": "revenue"}, {"id": "x"}):
        with pytest.raises(ValueError, match="not an experiment"):
            Experiment.of(broken)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[PublishedShop, str]:
    """A published shop, and a second version trained on it and not published."""
    shop = published_shop(tmp_path_factory.mktemp("experiment"))
    other = train(
        LocalLake(shop.lake),
        TrainOptions(seed=7, weights={"view": 1.0}),
        now=NOW + timedelta(minutes=1),
    )
    return shop, other.version


def _copy(
    pair: tuple[PublishedShop, str], to: Path
) -> tuple[PublishedShop, str, LocalLake, SQLiteStore]:
    """A copy of the two versions' shop: the shop, the candidate, its lake and its store."""
    shop, other = pair
    shutil.copytree(shop.lake, to / "lake")
    with sqlite3.connect(shop.store) as source, sqlite3.connect(to / "store.sqlite3") as copy:
        source.backup(copy)  # with what is still in its write-ahead log
    copied = PublishedShop(to / "lake", to / "store.sqlite3", shop.version)
    return copied, other, LocalLake(copied.lake), SQLiteStore(copied.store)


def test_the_candidate_answers_its_share_of_shoppers_and_every_id_names_its_version(
    two_versions: tuple[PublishedShop, str], tmp_path: Path
) -> None:
    shop, candidate, lake, store = _copy(two_versions, tmp_path)
    experiment = start(lake, store, candidate, share=0.5, now=NOW)
    assert store.active_version() == shop.version  # nothing flipped
    assert running(store) == experiment
    services = services_for(shop, tmp_path / "api")
    users = [f"U{n}" for n in range(1, 61)]
    with serving(services) as base:
        for user in users:
            status, body = get_json(base, "/v1/recommendations/personalized", userId=user, k="5")
            assert status == 200, body
            expected = candidate if experiment.assigned(user) else shop.version
            assert body["modelVersion"] == expected, (user, body)
            assert version_of(body["recommendationId"]) == expected
            if body["source"] == "batch":  # the candidate's own rows, read from the store
                row = store.recommendations("user", user, expected)
                assert row is not None
                assert [i["id"] for i in body["items"]] == row[0][:5]
            status, ranked = get_json(base, "/v1/recommendations/related", itemId="I1", userId=user)
            assert ranked["modelVersion"] == expected
        # An item page with no shopper is production's.
        assert get_json(base, "/v1/recommendations/related", itemId="I1")[1]["modelVersion"] == (
            shop.version
        )
        health = get_json(base, "/v1/health")[1]
        assert health["modelVersion"] == shop.version
        assert health["experiment"] == {
            "id": experiment.id,
            "candidate": candidate,
            "share": 0.5,
            "loaded": True,
        }
    arms = {experiment.assigned(u) for u in users}
    assert arms == {True, False}  # both arms were asked


def test_publishing_waits_while_an_experiment_runs_and_stopping_lets_the_candidate_go(
    two_versions: tuple[PublishedShop, str], tmp_path: Path
) -> None:
    shop, candidate, lake, store = _copy(two_versions, tmp_path)
    third = train(lake, TrainOptions(seed=3), now=NOW + timedelta(minutes=2)).version
    start(lake, store, candidate, share=0.1, now=NOW)
    with pytest.raises(ExperimentRefused, match="is running; stop it first"):
        start(lake, store, third, share=0.1)
    with pytest.raises(ExperimentRunning, match="Stop it first"):
        publish(lake, store, third, force=True)
    assert store.active_version() == shop.version

    ended = stop(lake, store, now=NOW + timedelta(days=8))
    assert ended.ended == "stopped"
    assert running(store) is None
    assert store.recommendations("user", "U1", candidate) is None  # its rows are gone
    assert store.recommendations("user", "U1", shop.version) is not None
    assert [e.stopped_at for e, _ in records(lake)] == [ended.stopped_at]
    publish(lake, store, third, force=True)  # free again
    assert store.active_version() == third
    with pytest.raises(ExperimentRefused, match="no experiment is running"):
        stop(lake, store)


def test_promoting_the_candidate_makes_it_production_and_ends_the_experiment(
    two_versions: tuple[PublishedShop, str], tmp_path: Path
) -> None:
    shop, candidate, lake, store = _copy(two_versions, tmp_path)
    start(lake, store, candidate, share=0.2, now=NOW)
    ended = stop(lake, store, promote=True, outcome={"verdict": "candidate-wins"})
    assert ended.ended == "promoted"
    assert store.active_version() == candidate
    assert running(store) is None
    assert ProductionPointer(lake).history() == [shop.version, candidate]
    record = records(lake)[-1][1]
    assert record["ended"] == "promoted"
    assert record["outcome"] == {"verdict": "candidate-wins"}


def test_an_experiment_needs_production_and_another_version(
    two_versions: tuple[PublishedShop, str], tmp_path: Path
) -> None:
    shop, candidate, lake, store = _copy(two_versions, tmp_path)
    with pytest.raises(ExperimentRefused, match="is production already"):
        start(lake, store, shop.version, share=0.1)
    with pytest.raises(ExperimentRefused, match="--share must be between 0 and 1"):
        start(lake, store, candidate, share=1.0)
    empty = SQLiteStore(tmp_path / "empty.sqlite3")
    (Path(shop.lake) / "models" / "production.json").unlink()
    with pytest.raises(ExperimentRefused, match="nothing is in production yet"):
        start(lake, empty, candidate, share=0.1)
    assert running(empty) is None


def test_publishing_the_candidate_by_hand_ends_the_experiment_in_the_store_and_the_lake(
    two_versions: tuple[PublishedShop, str], tmp_path: Path
) -> None:
    _, candidate, lake, store = _copy(two_versions, tmp_path)
    start(lake, store, candidate, share=0.2, now=NOW)
    publish(lake, store, candidate, force=True)  # `recs models promote CANDIDATE --force`
    assert running(store) is None
    ended = records(lake)[-1][0]
    assert ended.ended == "promoted"
    assert ended.stopped_at is not None


def test_a_candidate_that_cannot_be_loaded_leaves_every_shopper_on_production(
    two_versions: tuple[PublishedShop, str], tmp_path: Path
) -> None:
    shop, candidate, lake, store = _copy(two_versions, tmp_path)
    experiment = start(lake, store, candidate, share=0.5, now=NOW)
    services = services_for(shop, tmp_path / "api")
    assert services.recommender.candidate is not None
    services.recommender.candidate.check_seconds = 0.0
    chosen = next(f"U{n}" for n in range(1, 100) if experiment.assigned(f"U{n}"))
    with serving(services) as base:
        path = "/v1/recommendations/personalized"
        assert get_json(base, path, userId=chosen)[1]["modelVersion"] == candidate
        # The experiment now names a version whose files are gone: the loaded candidate
        # must not answer for it, and nobody gets an error.
        store.set_experiment({**experiment.body(), "candidate": "20261102T235959Z"})
        status, body = get_json(base, path, userId=chosen)
        assert status == 200
        assert body["modelVersion"] == shop.version
        health = get_json(base, "/v1/health")[1]
        assert health["experiment"]["loaded"] is False
        assert "20261102T235959Z" in health["experiment"]["error"]
