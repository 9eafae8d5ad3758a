"""The blend, its repeat policies and fallbacks, on hand-made data where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from common.contract import EVENT_TYPES
from training.blend import (
    DAY_MS,
    ENTRY_TYPES,
    Blend,
    UserHistory,
    bought_at,
    fill,
    no_types,
    recommend_one,
    top_by_score,
    trending_scores,
    with_events,
)
from training.data import DEFAULT_WEIGHTS, Interactions, global_split
from training.scoring import recommend_users
from training.tuning import choose, default_blend, label
from training.validation import MIN_VALIDATION_USERS, beyond_noise, folds

NOW = 1_780_000_000_000
# Items: 0 viewed, 1 bought, 2 the recipe's pick, 3 and 4 trending, 5 nothing.
USER = UserHistory(
    items=np.array([0, 1], np.int64),
    weights=np.array([1.0, 8.0], np.float32),
    counts=np.array([1.0, 3.0], np.float32),
    last_ms=np.array([NOW - DAY_MS, NOW - 10 * DAY_MS], np.int64),
    last_by_type=bought_at(np.array([False, True]), np.array([NOW - DAY_MS, NOW - 10 * DAY_MS])),
)
COLLAB = np.array([5.0, 5.0, 2.0, 0.0, 0.0, 0.0], np.float32)
TRENDING = np.array([0.2, 0.1, 0.0, 1.0, 0.5, 0.0], np.float32)


def _answer(blend: Blend, k: int = 6, collab: np.ndarray | None = COLLAB) -> list[int]:
    found = recommend_one(blend, collab, USER, TRENDING, top_by_score(TRENDING, 100), NOW, k)
    return [code for code, _ in found]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("exclude-seen", [2, 3, 4]),  # nothing the user touched
        ("exclude-purchased", [0, 2, 3, 4]),  # what they viewed may come back, not what they bought
        ("allow", [1, 0, 2, 3, 4]),  # repeats welcome: the most bought item first
    ],
)
def test_each_repeat_policy(policy: str, expected: list[int]) -> None:
    blend = Blend(collab=1, own=1, recency=1, trending=0.1, repeats=policy)  # type: ignore[arg-type]
    assert sorted(_answer(blend)) == sorted(expected)
    assert _answer(blend)[0] == expected[0]


def test_what_was_just_bought_waits_before_it_comes_back() -> None:
    blend = Blend(collab=1, own=1, recency=1, trending=0.1, repeats="allow")
    # Item 1 was bought 10 days ago: it may come back. Bought half an hour ago, not yet.
    assert 1 in _answer(blend)
    half_an_hour_later = USER.last_ms[1] + DAY_MS // 48
    found = recommend_one(blend, COLLAB, USER, TRENDING, np.array([3, 4]), half_an_hour_later, 6)
    assert 1 not in [code for code, _ in found]
    assert 0 in [code for code, _ in found]  # a view is not a purchase: it may come back


def test_the_recipe_proposes_only_new_items() -> None:
    # COLLAB scores the user's own items highest; they come back only through own/recency.
    only_collab = Blend(collab=1, own=0, recency=0, trending=0, repeats="allow")
    found = recommend_one(only_collab, COLLAB, USER, TRENDING, np.array([3, 4]), NOW, 1)
    assert found == [(2, 1.0)]


def test_a_user_without_scores_gets_nothing_not_an_id_ordered_list() -> None:
    nobody = UserHistory.empty()
    blend = Blend(collab=1, own=1, recency=1, trending=0, repeats="exclude-seen")
    assert recommend_one(blend, None, nobody, TRENDING, np.array([3, 4]), NOW, 5) == []
    # And in batch: a row of -1, which serving answers with popular items.
    log = _log([("U1", "I1", "view", 0)])
    history = log.history(DEFAULT_WEIGHTS)
    best, _ = recommend_users(
        blend,
        None,
        np.array([0]),
        history.weight_matrix(log.n_items),
        history,
        np.zeros(log.n_items, np.float32),
        NOW,
        3,
    )
    assert best.tolist() == [[-1, -1, -1]]


def test_short_answers_are_filled_with_trending_items_in_falling_order() -> None:
    found = fill([(2, 0.5)], TRENDING, 4, blocked=[3])
    assert [c for c, _ in found] == [2, 4, 0, 1]
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True)
    assert found[1] == (4, pytest.approx(0.25))
    assert fill([], TRENDING, 4, blocked=[]) == []  # the caller answers with popular items
    allowed = np.array([False, True, True, False, False, False])
    assert [c for c, _ in fill([(2, 0.5)], TRENDING, 4, [], allowed)] == [2, 1]


def test_new_events_decay_the_trained_history_from_the_newest_event() -> None:
    trained = UserHistory(
        items=np.array([0], np.int64),
        weights=np.array([8.0], np.float32),
        counts=np.array([1.0], np.float32),
        last_ms=np.array([NOW], np.int64),
        last_by_type=no_types(1),
    )
    later = NOW + 30 * DAY_MS
    news = [(0, "purchase", later), (4, "view", later)]
    got = with_events(trained, NOW, news, dict(DEFAULT_WEIGHTS), half_life_days=30.0)
    assert got.items.tolist() == [0, 4]
    # The old 8 halves over one half-life; the purchase adds its full 8.
    np.testing.assert_allclose(got.weights, [8.0 / 2 + 8.0, 1.0])
    assert got.counts.tolist() == [2.0, 1.0]
    assert got.last_ms.tolist() == [later, later]
    assert got.purchased.tolist() == [True, False]
    # Each entry remembers the last minute of each type: item 4 was viewed, never bought.
    minute = later // 60_000
    assert got.last_by_type.tolist() == [[0, 0, minute], [minute, 0, 0]]
    same = with_events(trained, NOW, news, dict(DEFAULT_WEIGHTS), half_life_days=None)
    np.testing.assert_allclose(same.weights, [16.0, 1.0])


def _log(rows: list[tuple[str, str, str, int]]) -> Interactions:
    users = sorted({r[0] for r in rows})
    items = sorted({r[1] for r in rows})
    kinds = ["view", "add_to_cart", "purchase"]
    return Interactions(
        user_ids=np.array(users),
        item_ids=np.array(items),
        user=np.array([users.index(r[0]) for r in rows], np.int32),
        item=np.array([items.index(r[1]) for r in rows], np.int32),
        kind=np.array([kinds.index(r[2]) for r in rows], np.int8),
        ts_ms=np.array([r[3] for r in rows], np.int64),
    )


def test_a_user_whose_events_are_years_old_keeps_a_whole_profile() -> None:
    five_years = 5 * 365 * DAY_MS
    log = _log(
        [
            ("old", "I1", "view", NOW - five_years - DAY_MS),
            ("old", "I2", "purchase", NOW - five_years),
            ("new", "I1", "view", NOW),
        ]
    )
    history = log.history(DEFAULT_WEIGHTS, half_life_days=7.0)
    old = history.user(0 if log.user_ids[0] == "old" else 1)
    # Decay counts back from the user's own newest event, so nothing rounds to 0.
    assert (old.weights > 0).all()
    np.testing.assert_allclose(old.weights, [1.0 * 2 ** (-1 / 7), 8.0], rtol=1e-5)
    assert old.purchased.tolist() == [False, True]
    # The last event of each type, to the minute: I1 was viewed, I2 bought.
    assert old.last_by_type.tolist() == [
        [(NOW - five_years - DAY_MS) // 60_000, 0, 0],
        [0, 0, (NOW - five_years) // 60_000],
    ]
    assert ENTRY_TYPES == EVENT_TYPES  # the columns are the contract's types, in its order


def test_trending_halves_every_half_life_and_tops_at_one() -> None:
    item = np.array([0, 0, 1, 1, 1, 1])
    week = NOW - 7 * DAY_MS
    ts = np.array([NOW, NOW, week, week, week, week])
    np.testing.assert_allclose(trending_scores(item, ts, 3, 7.0, NOW), [1.0, 1.0, 0.0])
    np.testing.assert_allclose(trending_scores(item, ts, 3, None, NOW), [0.5, 1.0, 0.0])
    years = trending_scores(item, ts - 3000 * DAY_MS, 3, 7.0, NOW)
    np.testing.assert_allclose(years, [1.0, 1.0, 0.0])  # float64: old shops keep a ranking


def test_the_global_split_cuts_on_time_and_counts_repeats() -> None:
    rows = [(f"U{u}", "I1", "purchase", NOW - 10 * DAY_MS) for u in range(12)]
    rows += [(f"U{u}", "I1", "purchase", NOW) for u in range(12)]  # the same item again
    rows += [(f"U{u}", "I2", "view", NOW) for u in range(12)]
    rows += [("late", "I3", "view", NOW)]  # no history before the cut: not scored
    log = _log(rows)
    split = global_split(log, cut_ms=NOW - DAY_MS)
    assert split.cut_ms == NOW - DAY_MS
    assert split.train.tolist() == (log.ts_ms < NOW - DAY_MS).tolist()
    assert len(split.test_users) == 12
    assert "late" not in set(log.user_ids[split.test_users])
    truth = split.truth.toarray()
    assert (truth[:, list(log.item_ids).index("I1")] == 1).all()  # the repeat counts
    assert (truth[:, list(log.item_ids).index("I2")] == 1).all()


def _shop(repeats: bool, seed: int = 5) -> Interactions:
    """Users in 8 groups, each liking 5 items; with `repeats` they keep buying their own few
    items again, without it each buys a group item once and never again."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, str, int]] = []
    for u in range(400):
        group = u % 8
        liked = [group * 5 + i for i in range(5)]
        own = rng.choice(liked, size=2, replace=False)
        bought: set[int] = set()
        for day in range(60):
            if rng.random() > 0.25:
                continue
            if repeats:
                item = int(rng.choice(own))
            else:
                unseen = [i for i in liked if i not in bought]
                if not unseen:
                    break
                item = int(rng.choice(unseen))
                bought.add(item)
            rows.append((f"U{u}", f"I{item:02d}", "purchase", NOW - (60 - day) * DAY_MS))
    return _log(rows)


def test_tuning_welcomes_repeats_only_where_the_data_shows_they_pay() -> None:
    repeat_shop = choose(_shop(repeats=True), dict(DEFAULT_WEIGHTS), budget_s=30)
    assert repeat_shop.blend.repeats == "allow"
    assert repeat_shop.blend.own > 0 or repeat_shop.blend.recency > 0
    discovery_shop = choose(_shop(repeats=False), dict(DEFAULT_WEIGHTS), budget_s=30)
    # Nobody buys an item twice there: seen items never come back, whatever validation says.
    # Before, "purchased" (or, on a noisy log of ratings, "none") could win on noise.
    assert discovery_shop.blend.repeats == "exclude-seen"
    assert discovery_shop.rules[0] == (
        "repeats exclude-seen: no (user, item) pair occurs twice in the data, so items a user "
        "already had are never recommended"
    )
    assert discovery_shop.recipe is not None
    assert discovery_shop.validation > 0.1
    # Its groups are what the recipe finds: it clearly adds to the blend (issue 27, item 7).
    assert discovery_shop.recipe_adds is not None
    assert discovery_shop.recipe_adds.low > 0
    assert discovery_shop.recipe_note() == ""
    # No rule but the learned ranker's verdict, which every run records.
    assert [r for r in repeat_shop.rules if not r.startswith("the learned ranker")] == []


def test_a_gain_within_noise_keeps_the_default() -> None:
    """The rule itself, on per-user scores whose answer is known."""
    rng = np.random.default_rng(0)
    default = rng.random(60)
    noisy = default + rng.normal(0.0, 0.2, 60)  # the same on average, give or take
    assert beyond_noise(noisy, default).low <= 0
    clear = default + 0.05 + rng.normal(0.0, 0.01, 60)
    assert beyond_noise(clear, default).low > 0
    same = beyond_noise(default, default)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)


def _noise_shop(seed: int = 3) -> Interactions:
    """30 users buying at random from 40 items, some twice: nothing to learn, and too few users
    for any tuned weight to show a gain beyond noise."""
    rng = np.random.default_rng(seed)
    rows = [
        (f"U{u}", f"I{int(rng.integers(40)):02d}", "purchase", NOW - int(rng.integers(60)) * DAY_MS)
        for u in range(30)
        for _ in range(12)
    ]
    return _log(rows)


def test_on_noise_every_choice_stays_at_its_default() -> None:
    """Before: coordinate ascent kept any weight that scored a hair higher on 30 users, so a
    noisy shop was served repeats with trending weighted 3, or a recipe picked by chance."""
    found = choose(_noise_shop(), dict(DEFAULT_WEIGHTS), budget_s=30)
    assert found.blend == default_blend()
    assert found.recipe is not None
    assert found.recipe.name == "item-knn"
    # Served as the default, and said to add nothing measurable: there is nothing to learn.
    assert found.recipe_note().startswith("item-knn (alpha 0.5) adds nothing measurable")
    assert found.to_json()["recipe_adds"]["low"] <= 0
    assert found.half_life_days is None
    assert any(rule.startswith("the blend (") and "within noise" in rule for rule in found.rules)
    assert found.ranker is None
    assert not found.ranker_report["used"]
    # 30 users cannot fill the time-cut folds: a fold of each user's newest events is added.
    assert any("a fold of each user's newest events was added" in r for r in found.rules)


def test_a_clear_gain_moves_the_choice_off_its_default() -> None:
    """A shop of rebuyers with 400 users: repeats pay far beyond noise, so they are kept."""
    found = choose(_shop(repeats=True), dict(DEFAULT_WEIGHTS), budget_s=30)
    assert found.blend != default_blend()
    assert not any(rule.startswith("the blend (") for rule in found.rules)


def test_few_users_near_the_end_add_a_fold_of_each_users_newest_events() -> None:
    """A log spanning years where 400 users were active early and 12 late: the time-cut folds
    score only the late few, so a per-user fold lets the many speak."""
    rng = np.random.default_rng(1)
    rows = [
        (f"U{u}", f"I{int(rng.integers(50)):02d}", "view", NOW - (2000 - d) * DAY_MS)
        for u in range(400)
        for d in rng.choice(1000, size=5, replace=False).tolist()
    ]
    rows += [
        (f"U{u}", f"I{int(rng.integers(50)):02d}", "view", NOW - (900 - d) * DAY_MS)
        for u in range(12)
        for d in range(0, 900, 3)
    ]
    made = folds(_log(rows), seed=42)
    assert sum(len(f.users) for f in made if not f.per_user) < MIN_VALIDATION_USERS
    per_user = [f for f in made if f.per_user]
    assert len(per_user) == 1
    assert len(per_user[0].users) >= MIN_VALIDATION_USERS
    split = per_user[0].split
    assert split.cut_ms is not None
    assert split.cut_ms > _log(rows).ts_ms[split.train].max()


def test_tuning_never_sees_the_events_the_gate_judges_on() -> None:
    """Before: the fold cut at 90% of the events scored exactly the gate's holdout, so the
    gate judged a blend on the events it had been chosen on."""
    log = _shop(repeats=True)
    late = log.ts_ms >= np.quantile(log.ts_ms, 0.9)
    made = folds(log, seed=42, within=~late)
    assert made
    for fold in made:
        assert not (fold.split.train & late).any()
        assert fold.split.cut_ms is not None
        assert fold.split.cut_ms <= log.ts_ms[late].min()
    # The per-user fold (30 users are too few for the time cuts) holds out and trains on
    # events inside the window only: its truth is each user's newest events before the window
    # ends.
    few = _noise_shop()
    window = few.ts_ms < np.quantile(few.ts_ms, 0.9)
    (per_user,) = [f for f in folds(few, seed=42, within=window) if f.per_user]
    assert not (per_user.split.train & ~window).any()
    held = window & ~per_user.split.train
    assert held.any()
    truth = per_user.split.truth.tocoo()
    rows = per_user.users[truth.row]
    assert {(int(u), int(i)) for u, i in zip(rows, truth.col, strict=True)} == {
        (int(u), int(i)) for u, i in zip(few.user[held], few.item[held], strict=True)
    }


def test_repeat_rates_by_hand() -> None:
    log = _log(
        [
            ("U1", "I1", "view", NOW),
            ("U1", "I1", "purchase", NOW + 1),  # comes back to I1
            ("U1", "I2", "view", NOW + 2),
            ("U2", "I1", "view", NOW + 3),
            ("U2", "I1", "view", NOW + 4),  # comes back to I1
        ]
    )
    assert log.repeat_rates() == {"any": 0.4, "view": 0.25, "purchase": 1.0}
    ratings = _log([(f"U{u}", f"I{i}", "view", NOW + i) for u in range(3) for i in range(4)])
    assert ratings.repeat_rates() == {"any": 0.0, "view": 0.0}


def test_row_positions_lists_each_rows_entries_in_order() -> None:
    from training.blend import row_positions

    indptr = np.array([0, 2, 2, 5, 6], np.int64)
    positions, lengths = row_positions(indptr, np.array([2, 0, 1, 3], np.int64))
    assert positions.tolist() == [2, 3, 4, 0, 1, 5]
    assert lengths.tolist() == [3, 2, 0, 1]
    empty, none = row_positions(indptr, np.array([1], np.int64))
    assert empty.tolist() == []
    assert none.tolist() == [0]


def _cycle_shop(users: int = 400) -> Interactions:
    """Shoppers who rebuy each of their eight consumables every 28 days, the eight a few days
    apart: what comes next is what they bought longest ago, which a recency weight (newest
    first) gets backwards and no other weight of the blend tells apart, and which the learned
    ranker's days-since feature can learn."""
    rng = np.random.default_rng(5)
    rows = []
    for u in range(users):
        items = rng.choice(40, size=8, replace=False).tolist()
        for j, item in enumerate(items):
            phase = (u + 3 * j + j // 2) % 28
            rows += [
                (f"U{u}", f"I{item:02d}", "purchase", NOW - (140 - d) * DAY_MS)
                for d in range(phase, 140, 28)
            ]
    return _log(rows)


def test_a_learned_ranker_is_used_where_it_pays_beyond_noise() -> None:
    found = choose(_cycle_shop(), dict(DEFAULT_WEIGHTS), budget_s=30)
    report = found.ranker_report
    assert report["used"], report
    assert found.ranker is not None
    assert report["gain"]["low"] > 0
    assert report["ranker"] > report["blend"]


def test_a_manifest_written_before_repeats_still_loads() -> None:
    old = Blend(repeats="allow").to_json()
    old.pop("repeats")
    old["exclude"] = "none"
    assert Blend.from_json(old) == Blend(repeats="allow")


def test_once_the_tuning_budget_is_spent_the_rest_is_skipped_and_said() -> None:
    """The first candidate is always tried; after the budget, each candidate and half-life
    left is skipped, and the manifest's `tuning.skipped` names it and why."""
    from training.tuning import HALF_LIVES, recipe_candidates

    shop = _shop(repeats=True)
    spent = choose(shop, dict(DEFAULT_WEIGHTS), budget_s=0.0, half_life="auto")
    assert {t["recipe"] for t in spent.tried} == {label(recipe_candidates(shop.n_items, 42)[0])}
    over = [s for s in spent.skipped if "the 0 s tuning budget was spent" in s]
    candidates = len(recipe_candidates(shop.n_items, 42))
    assert len(over) == (candidates - 1) + (len(HALF_LIVES) - 1)
    assert spent.to_json()["skipped"] == spent.skipped
    roomy = choose(shop, dict(DEFAULT_WEIGHTS), budget_s=1e9, half_life=None)
    assert not [s for s in roomy.skipped if "budget" in s]
    assert len({t["recipe"] for t in roomy.tried}) == candidates
