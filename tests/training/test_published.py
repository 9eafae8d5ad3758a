"""Serving's numpy-only model against training: the recipe scores it mirrors, the batch
answers it must agree with, and its import graph."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from training.blend import REPEAT_POLICIES, Blend, Repeats, top_by_score, trending_scores
from training.data import DEFAULT_WEIGHTS, Interactions
from training.published import NeighbourTable, PublishedModel
from training.ranker import Trees
from training.recipes import ALS, EASE, ItemKNN, Recipe
from training.scoring import components, entries, recommend_users

N_USERS, N_ITEMS, N_EVENTS = 120, 40, 2400
DAY = 86_400_000
NOW = 1_780_000_000_000
HALF_LIFE = 30.0


def _log(seed: int = 3) -> Interactions:
    """Random events over 200 days, items drawn with a skew so some are popular."""
    rng = np.random.default_rng(seed)
    item = np.minimum(rng.zipf(1.3, N_EVENTS) - 1, N_ITEMS - 1).astype(np.int32)
    return Interactions(
        user_ids=np.array([f"U{u:03d}" for u in range(N_USERS)]),
        item_ids=np.array([f"I{i:03d}" for i in range(N_ITEMS)]),
        user=rng.integers(0, N_USERS, N_EVENTS).astype(np.int32),
        item=item,
        kind=rng.choice(np.array([0, 1, 2], dtype=np.int8), N_EVENTS, p=[0.6, 0.2, 0.2]),
        ts_ms=NOW - rng.integers(0, 200 * DAY, N_EVENTS).astype(np.int64),
    )


LOG = _log()
HISTORY = LOG.history(DEFAULT_WEIGHTS, half_life_days=HALF_LIFE)
MATRIX = HISTORY.weight_matrix(N_ITEMS)
TRENDING = trending_scores(LOG.item, LOG.ts_ms, N_ITEMS, 7.0, NOW)


def _model(recipe: Recipe | None, blend: Blend, similar: Recipe | None = None) -> PublishedModel:
    """The PublishedModel that `recs train` would write for this recipe and blend."""
    arrays = recipe.arrays() if recipe is not None else {}
    similar_arrays = (similar or ItemKNN(neighbours=10).fit(MATRIX)).arrays()
    return PublishedModel(
        version="v1",
        recipe=None if recipe is None else recipe.name,
        params={} if recipe is None else recipe.params,
        blend=blend,
        user_ids=LOG.user_ids,
        item_ids=LOG.item_ids,
        categories=np.array(["lamps" if i % 2 else "rugs" for i in range(N_ITEMS)]),
        trending=TRENDING,
        weights=dict(DEFAULT_WEIGHTS),
        history=HISTORY,
        similar=NeighbourTable.from_arrays(similar_arrays),
        last_event_ms=int(LOG.ts_ms.max()),
        neighbours=(NeighbourTable.from_arrays(arrays) if "neighbours_indptr" in arrays else None),
        item_factors=arrays.get("item_factors"),
    )


@pytest.mark.parametrize(
    "recipe", [ItemKNN(neighbours=10), EASE(l2=5.0, neighbours=10), ALS(factors=8, seed=1)]
)
def test_realtime_scores_match_the_training_recipe(recipe: Recipe) -> None:
    recipe.fit(MATRIX)
    model = _model(recipe, Blend())
    for user in range(0, N_USERS, 13):
        expected = np.asarray(recipe.scores(None, MATRIX[user]), dtype=np.float32).ravel()
        got = model.collab(model.user_history(str(LOG.user_ids[user])))
        assert got is not None
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


BLENDS = [
    Blend(collab=1, own=0, recency=0, trending=0.1, repeats=policy) for policy in REPEAT_POLICIES
] + [
    Blend(collab=1, own=3, recency=0.3, trending=1, repeats="allow"),
    Blend(collab=0, own=1, recency=1, trending=0.5, repeats="exclude-purchased"),
]


@pytest.mark.parametrize("blend", BLENDS, ids=lambda b: f"{b.weights}-{b.repeats}")
@pytest.mark.parametrize("recipe", [ItemKNN(neighbours=10), EASE(l2=5.0, neighbours=10), None])
def test_realtime_answers_are_the_batch_answers(blend: Blend, recipe: Recipe | None) -> None:
    """With no news, what a user gets realtime is their batch row: same items, same order."""
    if recipe is not None:
        recipe.fit(MATRIX)
    model = _model(recipe, blend)
    users = np.arange(N_USERS, dtype=np.int64)
    best, scores = recommend_users(blend, recipe, users, MATRIX, HISTORY, TRENDING, NOW, 10)
    _assert_realtime_is_batch(model, best, scores, NOW)


def _assert_realtime_is_batch(
    model: PublishedModel, best: np.ndarray, scores: np.ndarray, now: int
) -> None:
    """Each user's realtime answer (no news) is their batch row: same items, same order."""
    for user in range(len(best)):
        got = model.recommend(model.user_history(str(LOG.user_ids[user])), now, best.shape[1])
        expected = [
            (str(LOG.item_ids[c]), float(s))
            for c, s in zip(best[user], scores[user], strict=True)
            if c >= 0
        ]
        assert [i for i, _ in got] == [i for i, _ in expected], f"user {user}"
        # The API rounds scores to 6 places.
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-6)


def test_als_batch_and_realtime_agree_on_most_items() -> None:
    """Batch uses the user's trained factors, realtime folds them in again: close, not equal."""
    recipe = ALS(factors=8, seed=1).fit(MATRIX)
    blend = Blend(collab=1, own=0, recency=0, trending=0, repeats="exclude-seen")
    model = _model(recipe, blend)
    users = np.arange(N_USERS, dtype=np.int64)
    best, _ = recommend_users(blend, recipe, users, MATRIX, HISTORY, TRENDING, NOW, 10)
    overlap = []
    for user in users.tolist():
        got = {i for i, _ in model.recommend(model.user_history(str(LOG.user_ids[user])), NOW, 10)}
        expected = {str(LOG.item_ids[c]) for c in best[user] if c >= 0}
        overlap.append(len(got & expected) / max(1, len(expected)))
    assert np.mean(overlap) > 0.7


def test_policy_and_filters_hold_in_realtime() -> None:
    recipe = ItemKNN(neighbours=10).fit(MATRIX)
    user = str(LOG.user_ids[5])
    for policy in REPEAT_POLICIES:
        blend = Blend(
            collab=1, own=1, recency=1, trending=0.2, repeats=policy, rebuy_after_hours=30 * 24
        )
        model = _model(recipe, blend)
        history = model.user_history(user)
        seen = {str(i) for i in LOG.item_ids[history.items]}
        bought = {str(i) for i in LOG.item_ids[history.items[history.purchased]]}
        just_now = history.purchased & (history.last_ms > NOW - 30 * DAY)
        just_bought = {str(i) for i in LOG.item_ids[history.items[just_now]]}
        expected = {"exclude-seen": seen, "exclude-purchased": bought, "allow": just_bought}[policy]
        assert expected
        assert model.left_out(history, NOW) == expected
        got = {i for i, _ in model.recommend(history, NOW, 20)}
        assert not got & expected
        skipped = sorted(got)[:2]
        again = model.recommend(history, NOW, 20, skip=skipped, category="lamps")
        assert again
        assert not {i for i, _ in again} & set(skipped)
        assert all(int(i[1:]) % 2 == 1 for i, _ in again)


def test_related_keeps_positive_neighbours_and_unknown_items_are_none() -> None:
    ease = EASE(l2=5.0, neighbours=20).fit(MATRIX)
    assert (ease.neighbours.data < 0).any(), "EASE keeps negative weights"
    model = _model(ease, Blend(), similar=ease)
    for item in ("I000", "I003", "I017"):
        related = model.related(item, 10)
        assert related is not None
        assert all(score > 0 and other != item for other, score in related)
        assert [s for _, s in related] == sorted((s for _, s in related), reverse=True)
        expected, _ = ease.similar_items(np.array([int(item[1:])]), 10)
        assert [i for i, _ in related] == [f"I{c:03d}" for c in expected[0] if c >= 0]
    assert model.related("unknown", 4) is None


def test_popular_answers_from_trending_within_a_category() -> None:
    model = _model(None, Blend())
    best = model.popular(5)
    assert [i for i, _ in best] == [f"I{c:03d}" for c in top_by_score(TRENDING, 5)]
    lamps = model.popular(5, category="lamps", skip=["I001"])
    assert lamps
    assert all(int(i[1:]) % 2 == 1 and i != "I001" for i, _ in lamps)


def _popular_over_every_item(
    model: PublishedModel, k: int, skip: list[str], category: str | None
) -> list[tuple[str, float]]:
    """What `popular` answered before it kept a trending order: a pass over every item."""
    scores = model.trending.astype(np.float32, copy=True)
    codes = [c for c in (model.item_code(i) for i in skip) if c is not None]
    if codes:
        scores[np.array(codes, dtype=np.int64)] = -np.inf
    if category is not None:
        scores[model.categories != category] = -np.inf
    best = top_by_score(np.where(np.isfinite(scores), scores, 0), k)
    return [(str(model.item_ids[i]), round(float(model.trending[i]), 6)) for i in best]


def test_popular_from_the_kept_trending_order_answers_as_a_pass_over_every_item() -> None:
    model = _model(None, Blend())
    rng = np.random.default_rng(7)
    for _ in range(200):
        k = int(rng.integers(1, 45))
        skip = [f"I{c:03d}" for c in rng.integers(0, N_ITEMS + 5, int(rng.integers(0, 12)))]
        category = [None, "lamps", "rugs", "none such"][int(rng.integers(0, 4))]
        expected = _popular_over_every_item(model, k, skip, category)
        assert model.popular(k, skip=skip, category=category) == expected, (k, skip, category)


@pytest.mark.parametrize("policy", REPEAT_POLICIES)
def test_news_is_folded_into_the_trained_history(policy: Repeats) -> None:
    recipe = ItemKNN(neighbours=10).fit(MATRIX)
    blend = Blend(collab=1, own=1, recency=0.5, trending=0.1, repeats=policy)
    model = _model(recipe, blend)
    user = str(LOG.user_ids[7])
    trained = model.user_history(user)
    newest = int(HISTORY.user_last_ms[7])
    news = [("I039", "purchase", newest + DAY), ("unknown-item", "view", newest + DAY)]
    history = model.user_history(user, news)
    assert set(trained.items.tolist()) | {39} == set(history.items.tolist())
    assert history.purchased[history.items == 39].all()
    # Just bought: held back under every policy; under "allow" only for a while.
    got = {i for i, _ in model.recommend(history, newest + DAY, 20)}
    assert "I039" not in got
    assert "I039" in model.left_out(history, newest + DAY)
    later = newest + DAY + int(blend.rebuy_after_hours * DAY / 24) + 1
    assert ("I039" in model.left_out(history, later)) == (policy != "allow")
    if policy == "allow":
        assert "I039" in {i for i, _ in model.recommend(history, later, 20)}


def test_the_serving_model_imports_nothing_heavy() -> None:
    # serving.publish too: `recs publish` runs where the trainer's libraries may not be.
    probe = (
        "import sys, serving.recommend, serving.store, serving.publish, training.published, "
        "training.blend; "
        "heavy = {'scipy', 'pandas', 'pyarrow', 'awswrangler', 'duckdb', 'implicit', "
        "'matplotlib'}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_als_fold_in_is_implicits_own_user_step() -> None:
    """Serving and training share `fold_in`; this holds it to implicit's recalculate_user."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from training.als_step import fold_in, gram_matrix

    with threadpool_limits(1, "blas"):
        # The exact solver: with conjugate gradient (its default) implicit approximates.
        model = AlternatingLeastSquares(
            factors=8, regularization=0.05, alpha=4.0, random_state=1, use_cg=False
        )
        model.fit(MATRIX, show_progress=False)
    factors = np.asarray(model.item_factors, dtype=np.float32)
    gram = gram_matrix(factors, 0.05)
    for user in range(0, N_USERS, 13):
        row = MATRIX[user]
        expected = np.asarray(model.recalculate_user(user, row)).ravel()
        got = fold_in(gram, factors, row.indices.astype(np.int64), row.data, 4.0)
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def _ranker(blend: Blend, recipe: Recipe | None, now: int) -> Trees:
    """A real LightGBM ranker, trained on these users' candidates against what a later
    random log says they touched."""
    from training.learned import fit

    users = np.arange(N_USERS, dtype=np.int64)
    parts = components(
        blend,
        recipe,
        users,
        MATRIX,
        HISTORY,
        TRENDING,
        top_by_score(TRENDING, blend.candidates),
        now,
    )
    found = entries(blend, parts, HISTORY.item_stats(N_ITEMS, now))
    later = _log(seed=11)
    truth = later.touched()
    trees = fit([(found, truth)], rounds=20)
    assert trees is not None
    return trees


@pytest.mark.parametrize("shortlist", [50, 6], ids=["all candidates", "a shortlist of 6"])
@pytest.mark.parametrize("blend", BLENDS[2:], ids=lambda b: f"{b.weights}-{b.repeats}")
@pytest.mark.parametrize("recipe", [ItemKNN(neighbours=10), None])
def test_a_learned_ranker_orders_realtime_answers_as_the_batch(
    blend: Blend, recipe: Recipe | None, shortlist: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ranker reads the same features on both paths, and reorders the same shortlist of
    the blend's best: realtime is the batch row."""
    monkeypatch.setattr("training.blend.SHORTLIST", shortlist)
    monkeypatch.setattr("training.scoring.SHORTLIST", shortlist)
    if recipe is not None:
        recipe.fit(MATRIX)
    now = int(LOG.ts_ms.max())  # the version's newest event, as `recs train` ranks at
    ranker = _ranker(blend, recipe, now)
    model = replace(_model(recipe, blend), ranker=ranker)
    users = np.arange(N_USERS, dtype=np.int64)
    # The batch rows (25) are shorter than the shortlist (50): so here, k is at most it.
    k = min(10, shortlist)
    plain, _ = recommend_users(blend, recipe, users, MATRIX, HISTORY, TRENDING, now, k)
    best, scores = recommend_users(blend, recipe, users, MATRIX, HISTORY, TRENDING, now, k, ranker)
    assert (best != plain).any()  # the ranker reorders something, or the test shows nothing
    _assert_realtime_is_batch(model, best, scores, now)
