"""New items: attribute vectors, learned group weights, exploration slots, and a version
that recommends and relates an item before it has any event."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from common.lake import LocalLake
from etl.job import run_etl
from ingestion.generator import ShopSpec, generate_shop, item_records, user_records, write_raw
from ingestion.raw import write_catalog_dump
from tests.etl_helpers import END, NOW
from training.attributes import Catalog, fit_new_items, group_features, learn_weights
from training.new_items import Vectors, explore, explore_slots
from training.pipeline import TrainOptions, train
from training.published import PublishedModel


@pytest.mark.parametrize(
    ("k", "share", "slots"),
    [(10, 0.2, [4, 9]), (10, 0.0, []), (5, 0.1, []), (10, 0.3, [3, 6, 9]), (4, 0.5, [1, 3])],
)
def test_exploration_takes_fixed_positions(k: int, share: float, slots: list[int]) -> None:
    assert explore_slots(k, share) == slots


@pytest.mark.parametrize("share", [0.1, 0.2, 0.25, 0.3, 0.5])
def test_any_first_k_of_a_longer_list_keeps_the_share(share: float) -> None:
    longest = explore_slots(100, share)
    for k in range(1, 100):
        assert explore_slots(k, share) == [s for s in longest if s < k]
        assert len(explore_slots(k, share)) == int(k * share + 1e-9)


def test_explore_gives_its_slots_to_young_items_not_placed_yet() -> None:
    ranked = [(c, 1.0 - c / 10) for c in range(6)]
    young = [(3, 0.9), (50, 0.8), (51, 0.7)]  # 3 is ranked too: the slot pulls it forward
    assert explore(ranked, young, 6, 0.34) == [
        (0, 1.0), (1, 0.9), (3, 0.9), (2, 0.8), (4, 0.6), (50, 0.8)
    ]  # fmt: skip
    # A short list: the picks fill what it leaves.
    assert explore(ranked[:1], young, 6, 0.34) == [(0, 1.0), (3, 0.9), (50, 0.8), (51, 0.7)]
    assert explore(ranked, [], 6, 0.34) == ranked
    assert explore(ranked, young, 6, 0.0) == ranked


@pytest.mark.parametrize("seed", range(20))
def test_a_batch_row_cut_to_k_is_the_realtime_answer_of_k(seed: int) -> None:
    """The batch explores a 25-long list; realtime explores k + slots: the first k agree."""
    rng = np.random.default_rng(seed)
    codes = rng.permutation(60)
    ranked = [(int(c), 1.0) for c in codes[:25]]
    young = [(int(c), 0.5) for c in rng.permutation(60)[:30]]
    share = float(rng.choice([0.1, 0.2, 0.3, 0.5]))
    batch = explore(ranked, young, 25, share)
    for k in range(1, 20):
        slots = len(explore_slots(k, share))
        assert explore(ranked[: k + slots], young[: k + slots], k, share) == batch[:k]


def test_vectors_spread_and_dot_match_scipy() -> None:
    rng = np.random.default_rng(1)
    dense = (rng.random((8, 5)) * (rng.random((8, 5)) < 0.5)).astype(np.float32)
    matrix = sp.csr_matrix(dense)
    vectors = Vectors(
        matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64), matrix.data, 5
    )
    rows, weights = np.array([1, 4, 6]), np.array([0.5, 2.0, 1.0], np.float32)
    profile = vectors.spread(rows, weights)
    np.testing.assert_allclose(profile, weights @ dense[rows], rtol=1e-6)
    np.testing.assert_allclose(
        vectors.dot(np.array([0, 7, 2]), profile), dense[[0, 7, 2]] @ profile, rtol=1e-5
    )
    back = vectors.transposed()
    np.testing.assert_allclose(
        sp.csr_matrix((back.data, back.indices, back.indptr), shape=(5, 8)).toarray(), dense.T
    )


def _catalog(n: int, categories: list[str], brands: list[str]) -> Catalog:
    return Catalog(
        item_ids=np.array([f"I{i:03d}" for i in range(n)]),
        title=[None] * n,
        category=categories,
        brand=brands,
        price=np.full(n, np.nan),
        attributes=["{}"] * n,
        listed_ms=np.zeros(n, np.int64),
        created=np.zeros(n, bool),
        active=np.ones(n, bool),
    )


def test_weights_follow_what_shoppers_touch_together() -> None:
    """Shoppers keep to one category; brands are random: the category group's weight wins."""
    rng = np.random.default_rng(3)
    n = 60
    categories = [f"c{i % 3}" for i in range(n)]
    brands = [f"b{b}" for b in rng.integers(0, 3, n)]
    rows, cols = [], []
    for user in range(300):
        items = rng.choice(np.arange(user % 3, n, 3), size=5, replace=False)
        rows += [user] * 5
        cols += items.tolist()
    touched = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(300, n))
    catalog = _catalog(n, categories, brands)
    weights = learn_weights(group_features(catalog), np.arange(n, dtype=np.int64), touched)
    assert weights["category"] > 0.9
    assert weights["brand"] < 0.1
    assert sum(weights.values()) == pytest.approx(1.0)


def test_cold_and_young_items() -> None:
    """Active catalog items without events are cold; an item is young by its creation time,
    or else by its first listing or first event; a delisted item is never explored."""
    day = 86_400_000
    now = 100 * day
    catalog = _catalog(5, ["a"] * 5, ["x"] * 5)
    catalog = Catalog(
        **{
            **catalog.__dict__,
            "listed_ms": np.array([10, 10, 95, 90, 99]) * day,
            "created": np.array([False, False, True, True, False]),
            "active": np.array([True, True, True, True, False]),
        }
    )
    item_ids = np.array(["I000", "I001"])  # the two with events
    first = np.array([5 * day, 90 * day])
    touched = sp.csr_matrix(np.ones((3, 2)))
    new_items, _ = fit_new_items(catalog, item_ids, first, touched, now, 0.2, age_days=30)
    assert new_items.cold_ids.tolist() == ["I002", "I003"]  # I004 is delisted
    # I001: listed on day 10, before its first event: old. I002 and I003 were created in
    # the last 30 days.
    assert new_items.young.tolist() == [2, 3]


@pytest.fixture(scope="module")
def shop_with_a_new_item(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalLake, str]:
    """A generated shop whose catalog, dumped yesterday, lists NEW1: a twin of a popular
    item (same title words, category, brand and price) that nobody has touched yet."""
    lake = LocalLake(tmp_path_factory.mktemp("new-items") / "lake")
    built = generate_shop(
        ShopSpec(users=400, items=150, categories=6, days=20, events=20_000, seed=5, end=END)
    )
    write_raw(built, lake)
    items = list(item_records(built))
    popular = int(np.bincount(built.item).argmax())
    twin = dict(items[popular], item_id="NEW1", created_at="2026-10-31T12:00:00Z")
    write_catalog_dump(lake, END, items=[*items, twin], users=user_records(built))
    run_etl(lake, now=NOW)
    return lake, str(items[popular]["item_id"])


def test_a_version_recommends_and_relates_an_item_without_events(
    shop_with_a_new_item: tuple[LocalLake, str],
) -> None:
    lake, twin_of = shop_with_a_new_item
    report = train(lake, TrainOptions(exploration=0.2, budget_s=5), now=NOW)
    manifest = json.loads(lake.read_bytes(f"models/{report.version}/manifest.json"))
    found = manifest["new_items"]
    assert found["share"] == 0.2
    assert found["chosen_on"].startswith("asked for")
    assert found["cold"] >= 1
    assert sum(found["weights"].values()) == pytest.approx(1.0, abs=1e-3)
    assert set(found["evidence"]) == {"0.1", "0.2", "0.3"}
    model = PublishedModel.load(lake, report.version)
    assert model.new_items is not None
    assert model.item_code("NEW1") is None
    young = {
        str(model.item_ids[c])
        if c < model.n_items
        else str(model.new_items.cold_ids[c - model.n_items])
        for c in model.new_items.young.tolist()
    }
    # Related items of the new item: its twin first (the same attributes).
    related = model.related("NEW1", 5)
    assert related is not None
    assert related[0][0] == twin_of
    # The batch gives the 5th, 10th ... places to young items, and a realtime answer from the
    # same history is the same list.
    lines = lake.read_bytes(f"batch/{report.version}/users.jsonl").decode().splitlines()
    shown_new = filled = 0
    for line in lines[:40]:
        row = json.loads(line)
        ids = row["output"]["recommendedItems"]
        in_slots = [ids[p] in young for p in explore_slots(len(ids), 0.2)]
        filled += all(in_slots)
        shown_new += "NEW1" in ids
        user = row["input"]["userId"]
        realtime = model.recommend(model.user_history(user), model.last_event_ms, len(ids))
        assert [i for i, _ in realtime] == ids
    assert shown_new > 0
    assert filled > 20
    # Its own related row is in the batch too, for the store to serve.
    items_lines = lake.read_bytes(f"batch/{report.version}/items.jsonl").decode()
    assert '"itemId":"NEW1"' in items_lines
    # A shopper with no history gets young items in the slots as well.
    popular = [i for i, _ in model.popular(10)]
    assert {popular[4], popular[9]} <= young


def test_auto_keeps_no_share_unless_the_holdout_shows_a_gain(
    shop_with_a_new_item: tuple[LocalLake, str],
) -> None:
    lake, _ = shop_with_a_new_item
    report = train(lake, TrainOptions(budget_s=5), now=NOW + timedelta(hours=1))
    chosen = report.new_items
    gains = [e for e in chosen.evidence.values() if e["low"] > 0]
    assert (chosen.share > 0) == bool(gains)
    if not gains:
        model = PublishedModel.load(lake, report.version)
        assert model.new_items is not None
        assert model.new_items.share == 0
        # Related items of the new item do not wait for a share.
        assert model.related("NEW1", 3)


def test_no_catalog_no_new_items() -> None:
    catalog = _catalog(0, [], [])
    new_items, weights = fit_new_items(
        catalog, np.array(["A"]), np.array([0]), sp.csr_matrix(np.ones((1, 1))), 10, 0.2
    )
    assert weights == {}
    assert not len(new_items.young)
    assert not len(new_items.cold_ids)


def test_the_api_relates_a_new_item_from_the_published_batch(
    shop_with_a_new_item: tuple[LocalLake, str], tmp_path: Path
) -> None:
    from ingestion.sinks import EventLog
    from serving.publish import publish
    from serving.recommend import LiveModel, Recommender
    from serving.store import SQLiteStore

    lake, twin_of = shop_with_a_new_item
    report = train(lake, TrainOptions(exploration=0.2, budget_s=5), now=NOW + timedelta(hours=2))
    store = SQLiteStore(tmp_path / "store.sqlite3")
    publish(lake, store, report.version, force=True)
    recommender = Recommender(LiveModel(lake, store), store, EventLog(tmp_path / "log.sqlite3"))
    answer = recommender.related("NEW1", 3)
    assert answer.source == "batch"
    assert answer.items[0][0] == twin_of
    # More than the batch row holds: the version's own attribute neighbours answer.
    assert recommender.related("NEW1", 60).source == "realtime"
