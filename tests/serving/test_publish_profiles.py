"""Serving a version without its users' histories (RECS_MODEL_USERS=store): each user's trained
history comes from the profile row `recs publish` wrote, and every answer is the one the
whole version gives. At millions of users the histories are past the API Lambda's memory
(docs/deploy.md's big-shop table)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from common.contract import Event
from common.lake import LocalLake
from ingestion.sinks import EventLog
from serving.recommend import LiveModel, Recommender
from serving.store import SQLiteStore
from tests.etl_helpers import NOW
from tests.serving_helpers import PublishedShop, published_shop
from training.errors import ModelUnreadable
from training.profiles import profile_history
from training.published import PublishedModel


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> PublishedShop:
    return published_shop(tmp_path_factory.mktemp("shop"))


def _recommenders(shop: PublishedShop, folder: Path) -> tuple[Recommender, Recommender, EventLog]:
    lake, store = LocalLake(shop.lake), SQLiteStore(shop.store)
    log = EventLog(folder / "events.sqlite3")
    whole = Recommender(LiveModel(lake, store), store, log)
    lean = Recommender(LiveModel(lake, store, users="store"), store, log)
    return whole, lean, log


def test_the_item_side_alone_answers_as_the_whole_version(
    shop: PublishedShop, tmp_path: Path
) -> None:
    whole, lean, log = _recommenders(shop, tmp_path)
    model = lean.live.get()
    assert (len(model.user_ids), model.history.n_users) == (0, 0)  # no user is held
    full = whole.live.get()
    users = [str(u) for u in full.user_ids[:: max(1, len(full.user_ids) // 40)]]
    items = [str(i) for i in full.item_ids[:30]]
    # Batch answers, and the filters that need the trained history.
    for user in users:
        for options in ({}, {"not_seen": True}, {"not_purchased": True}):
            assert lean.personalized(user, 10, **options) == whole.personalized(
                user, 10, **options
            ), (user, options)
    # Realtime answers: new events folded into the trained history.
    after = NOW + timedelta(days=1)
    log.append(
        [
            Event.model_validate(
                {"userId": user, "itemId": items[n % 30], "event_type": kind,
                 "ts": (after + timedelta(minutes=n)).isoformat()}
            )
            for n, user in enumerate(users)
            for kind in ("view", "add_to_cart")
        ]
    )  # fmt: skip
    for user in users:
        mine, theirs = lean.personalized(user, 10), whole.personalized(user, 10)
        assert mine.source == theirs.source == "realtime"
        assert [i for i, _ in mine.items] == [i for i, _ in theirs.items], user
        assert [s for _, s in mine.items] == pytest.approx([s for _, s in theirs.items])
    # A user the version never saw has no profile row: no trained history, as before.
    assert lean.personalized("U-new", 5) == whole.personalized("U-new", 5)


def test_every_trained_user_has_a_profile_row(shop: PublishedShop) -> None:
    store = SQLiteStore(shop.store)
    full = PublishedModel.load(LocalLake(shop.lake), shop.version)
    rows = [store.recommendations("profile", str(u), shop.version) for u in full.user_ids]
    assert all(row is not None for row in rows)


def test_a_version_from_before_profiles_says_how_to_serve_it(shop: PublishedShop) -> None:
    import json

    lake = LocalLake(shop.lake)
    key = f"models/{shop.version}/manifest.json"
    manifest = json.loads(lake.read_bytes(key))
    old = {**manifest, "artifacts": [a for a in manifest["artifacts"] if a != "item-stats.npz"]}
    lake.write_bytes(key, json.dumps(old).encode())
    try:
        with pytest.raises(ModelUnreadable, match="RECS_MODEL_USERS=lake"):
            PublishedModel.load(lake, shop.version, "store")
    finally:
        lake.write_bytes(key, json.dumps(manifest).encode())


def test_a_profile_row_gives_back_each_entrys_event_types(shop: PublishedShop) -> None:
    store = SQLiteStore(shop.store)
    full = PublishedModel.load(LocalLake(shop.lake), shop.version)
    for code in range(min(full.history.n_users, 25)):
        row = store.recommendations("profile", str(full.user_ids[code]), shop.version)
        assert row is not None
        got, newest = profile_history(row[0], row[1], full.item_code)
        want = full.history.user(code)
        assert newest == int(full.history.user_last_ms[code])
        assert got.items.tolist() == want.items.tolist()
        assert got.last_by_type.tolist() == want.last_by_type.tolist()
        np.testing.assert_allclose(got.weights, want.weights)


def test_a_profile_row_from_before_event_types_knows_purchases() -> None:
    codes = {"I1": 0, "I2": 1}
    # [newest ms, then per item: weight, count, last ms, bought]
    old = [9e11, 1.0, 1.0, 6e11, 0.0, 8.0, 2.0, 9e11, 1.0]
    got, newest = profile_history(["I1", "I2"], old, codes.get)
    assert newest == 9e11
    assert got.purchased.tolist() == [False, True]
    assert got.last_by_type.tolist() == [[0, 0, 0], [0, 0, 9e11 // 60_000]]
