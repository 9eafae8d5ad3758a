"""Recipes on small matrices with a known answer: two tastes that never mix."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp

from training.errors import ModelDiverged
from training.recipes import (
    ALS,
    EASE,
    RECIPES,
    ItemKNN,
    Popularity,
    Recipe,
    sparse_top_k,
    top_k,
)

# Items 0-4 are one taste, 5-9 another; each user has 3 items of one taste.
rng = np.random.default_rng(0)
ROWS = []
for user in range(200):
    taste = user % 2
    ROWS.append(rng.choice(np.arange(5) + 5 * taste, size=3, replace=False))
MATRIX = sp.csr_matrix(
    (np.ones(600, np.float32), (np.repeat(np.arange(200), 3), np.concatenate(ROWS))),
    shape=(200, 10),
)


@pytest.mark.parametrize(
    "model",
    [ItemKNN(neighbours=4), EASE(l2=10.0, neighbours=4), ALS(factors=4, iterations=20, seed=1)],
)
def test_personal_recipes_recommend_within_the_users_taste(model: Recipe) -> None:
    model.fit(MATRIX)
    users = np.arange(200, dtype=np.int64)
    taste = (users % 2)[:, None]
    best, _scores = model.recommend(users, MATRIX, 4)
    assert ((best // 5) == taste).mean() > 0.95
    best, _scores = model.recommend(users, MATRIX, 2, exclude=MATRIX)
    assert ((best // 5) == taste).mean() > 0.75  # only 2 unseen items of each taste are left
    for user in range(200):
        assert not np.intersect1d(best[user], ROWS[user]).size  # excluded items stay out
    similar, _ = model.similar_items(np.array([0, 7]), 3)
    assert set(similar[0]) <= {1, 2, 3, 4}
    assert set(similar[1]) <= {5, 6, 8, 9}


def test_popularity_ranks_by_summed_weight() -> None:
    matrix = sp.csr_matrix(np.array([[1, 0, 5], [1, 2, 0]], dtype=np.float32))
    model = Popularity().fit(matrix)
    best, scores = model.recommend(np.array([0, 1]), matrix, 3)
    assert best.tolist() == [[2, 0, 1], [2, 0, 1]]
    assert scores[0].tolist() == [5, 2, 2]


def test_artifacts_load_without_pickle() -> None:
    for model in (ItemKNN(neighbours=4).fit(MATRIX), ALS(factors=4, seed=1).fit(MATRIX)):
        buffer = io.BytesIO()
        np.savez(buffer, **model.arrays())
        buffer.seek(0)
        loaded = np.load(buffer, allow_pickle=False)
        assert set(loaded.files) == set(model.arrays())


def test_training_is_reproducible_with_a_seed() -> None:
    first = ALS(factors=4, seed=7).fit(MATRIX).item_factors
    second = ALS(factors=4, seed=7).fit(MATRIX).item_factors
    assert np.array_equal(first, second)


def test_nan_input_fails_loudly() -> None:
    broken = MATRIX.copy()
    broken.data[0] = np.nan
    with pytest.raises(ModelDiverged, match="NaN or infinite"):
        Popularity().fit(broken)
    with pytest.raises(ModelDiverged, match="NaN or infinite"):
        EASE().fit(broken)


def test_top_k_pads_rows_with_too_few_candidates() -> None:
    scores = np.array([[1.0, -np.inf, 3.0]], dtype=np.float32)
    items, _best = top_k(scores, 3)
    assert items.tolist() == [[2, 0, -1]]


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.8])
def test_item_knn_keeps_each_items_top_asymmetric_cosine(alpha: float) -> None:
    rng = np.random.default_rng(3)
    matrix = sp.random(300, 40, density=0.1, random_state=rng, format="csr", dtype=np.float32)
    model = ItemKNN(neighbours=5, alpha=alpha).fit(matrix)
    seen = (matrix > 0).astype(np.float64).toarray()
    co = seen.T @ seen
    counts = seen.sum(axis=0) + 1e-9
    expected = co / (counts[:, None] ** alpha * counts[None, :] ** (1 - alpha))
    np.fill_diagonal(expected, 0.0)
    got = model.neighbours.toarray()
    assert (np.count_nonzero(got, axis=1) <= 5).all()
    for item in range(40):
        kept = np.flatnonzero(got[item])
        assert np.allclose(got[item, kept], expected[item, kept], rtol=1e-5)
        # What was kept is the item's best: nothing left out scores higher.
        left_out = np.setdiff1d(np.flatnonzero(expected[item] > 0), kept)
        if len(kept) and len(left_out):
            assert expected[item, left_out].max() <= got[item, kept].min() + 1e-6


def test_item_knn_loads_versions_saved_with_the_old_block_parameter() -> None:
    model = ItemKNN(neighbours=4).fit(MATRIX)
    loaded = ItemKNN.from_arrays(model.arrays(), {"neighbours": 4, "alpha": 0.5, "block": 2048})
    assert (loaded.neighbours != model.neighbours).nnz == 0


def test_sparse_top_k_ranks_signed_scores_and_breaks_ties_by_column() -> None:
    matrix = sp.csr_matrix(
        np.array([[0.0, -2.0, 1.5, -0.5, 1.5], [3.0, 0.0, 0.0, 0.0, 0.0], [0, 0, 0, 0, 0]])
    )
    items, scores = sparse_top_k(matrix, 4)
    assert items.tolist() == [[2, 4, 3, 1], [0, -1, -1, -1], [-1, -1, -1, -1]]
    assert scores[0].tolist() == [1.5, 1.5, -0.5, -2.0]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_keeps_its_contract(name: str) -> None:
    """The recipe contract, each recipe alike (implicit's `recommender_base_test` pattern):
    fit, save the arrays as a version does, load them with `from_arrays`, and the loaded
    model scores, recommends and relates exactly as the fitted one."""
    from training.artifacts import npz_bytes

    small = {"als": {"factors": 4, "iterations": 5, "seed": 1}, "item-knn": {"neighbours": 4},
             "ease": {"l2": 10.0, "neighbours": 4}}  # fmt: skip
    fitted = RECIPES[name](**small.get(name, {})).fit(MATRIX)
    with np.load(io.BytesIO(npz_bytes(fitted.arrays())), allow_pickle=False) as saved:
        loaded = RECIPES[name].from_arrays(
            {key: saved[key] for key in saved.files}, dict(fitted.params)
        )
    assert loaded.params == fitted.params
    users = np.arange(0, 200, 7, dtype=np.int64)
    rows = MATRIX[users]
    np.testing.assert_allclose(loaded.scores(users, rows), fitted.scores(users, rows), rtol=1e-6)
    # A user the model never saw: scored from their row alone (ALS folds it in).
    np.testing.assert_allclose(loaded.scores(None, rows), fitted.scores(None, rows), rtol=1e-5)
    for got, want in zip(
        loaded.recommend(users, rows, 3, exclude=rows),
        fitted.recommend(users, rows, 3, exclude=rows),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    items = np.array([0, 7], dtype=np.int64)
    for got, want in zip(loaded.related(items, 3), fitted.related(items, 3), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    best, scores = fitted.recommend(users, rows, 3, exclude=rows)
    assert best.shape == scores.shape == (len(users), 3)
    assert not any(
        np.intersect1d(best[i][best[i] >= 0], rows[i].indices).size for i in range(len(users))
    )
