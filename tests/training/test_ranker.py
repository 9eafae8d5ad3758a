"""The learned ranker's trees, evaluated by numpy as serving does, against LightGBM itself."""

from __future__ import annotations

import lightgbm
import numpy as np

from training.learned import PARAMS
from training.ranker import FEATURES, Trees, item_stats, squash, user_row


def _booster(seed: int = 0) -> tuple[lightgbm.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(3000, len(FEATURES))).astype(np.float32)
    rows[:, 5] = rng.integers(0, 2, len(rows))  # a 0/1 feature, split at a threshold of 0.5
    labels = ((rows[:, 0] + 0.5 * rows[:, 5] + rng.normal(0, 0.5, len(rows))) > 0.8).astype(int)
    data = lightgbm.Dataset(rows, labels, group=[30] * 100, params={"verbose": -1})
    return lightgbm.train(dict(PARAMS), data, num_boost_round=40), rows


def test_the_trees_sum_as_lightgbm_predicts() -> None:
    booster, rows = _booster()
    trees = Trees.from_dump(booster.dump_model())
    assert len(trees.roots) == 40
    expected = booster.predict(rows, raw_score=True)
    np.testing.assert_allclose(trees.walk(rows), expected, rtol=0, atol=1e-9)
    again = Trees.from_arrays(trees.arrays())  # what serving loads: numpy alone
    assert again.text is None
    np.testing.assert_array_equal(again.raw(rows), trees.walk(rows))
    # Training's trees carry LightGBM's text, and score the batch output with it.
    with_text = Trees.from_dump(booster.dump_model(), booster.model_to_string())
    np.testing.assert_allclose(with_text.raw(rows), trees.walk(rows), rtol=0, atol=1e-9)


def test_a_tree_that_is_one_leaf_adds_its_value() -> None:
    dump = {"tree_info": [{"tree_structure": {"leaf_value": 0.25}}] * 2}
    trees = Trees.from_dump(dump)
    assert trees.raw(np.zeros((3, len(FEATURES)), np.float32)).tolist() == [0.5] * 3


def test_scores_stay_positive_and_keep_their_order() -> None:
    raw = np.array([-40.0, -1.0, 0.0, 2.0, 30.0])
    scores = squash(raw)
    assert (scores > 0).all()
    assert (np.diff(scores) >= 0).all()


def test_item_and_user_statistics_by_hand() -> None:
    day = 86_400_000
    now = 100 * day
    # Item 0: two users, one of them twice; item 1: one user, 30 days ago.
    items = np.array([0, 0, 1])
    counts = np.array([2.0, 1.0, 1.0], np.float32)
    last = np.array([now, now - 7 * day, now - 30 * day])
    stats = item_stats(items, counts, last, 3, now)
    np.testing.assert_allclose(stats[0], [2, 1 + 0.5 ** (7 / 30), 1 + 0.5, 0.5])
    np.testing.assert_allclose(stats[1], [1, 0.5, 0.5 ** (30 / 7), 0])
    np.testing.assert_allclose(stats[2], [0, 0, 0, 0])
    np.testing.assert_allclose(user_row(counts[:2], last[:2], now + 2 * day), [2, 3, 2])


def test_the_shortlist_covers_the_batch_rows() -> None:
    """Realtime reorders the blend's best SHORTLIST and appends the rest in the blend's order;
    the batch keeps only the shortlist. They agree because a batch row is never longer."""
    from training.metrics import K
    from training.ranker import SHORTLIST

    assert SHORTLIST >= K
