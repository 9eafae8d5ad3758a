"""Settings chosen from the data, every run, on validation splits cut on global time.

Nothing about the served blend is fixed in advance: the recipe and its main parameters, the
recency half-life of a user's history, whether a user's own items come back, and how much
the user's history, the recipe and what is trending each weigh. Two validation folds cut the
training data on global time (at 80% and 90% of the events); a fold trains on what came
before its cut and scores what each user did after it. Scores are averaged over the folds.

1. The recipe: each candidate, then the best one under each half-life, is fitted on each
   fold and scored alone on what users did that they had never done before (discovery is
   the recipe's job; the user's own history is the blend's).
2. The blend: with that recipe, coordinate ascent over the four weights, for each repeat
   policy and trending half-life, on NDCG@10 of exactly what would be served, repeats
   counted.

Every choice starts from a default, and moves away from it only when validation shows,
beyond noise, that another option pays: the recipe from the first candidate (item-kNN), the
half-life from none, the blend from `default_blend`. "Beyond noise" means the lower end of
a 95% paired bootstrap interval of the per-user gain is above 0. Where the time-cut folds
score fewer than `MIN_VALIDATION_USERS` users (a log spanning years, with few users active
near its end), a third fold holds out each user's newest events, so that more users speak.

On a large shop the folds are drawn from a sample of users, and each fold scores at most
`MAX_USERS` users, so tuning takes a bounded time. A time budget stops trying candidates
once spent; the manifest lists what was tried, what was skipped, and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from common.progress import Progress, quiet
from training.blend import REPEAT_POLICIES, Blend, History, Repeats, top_by_score, trending_scores
from training.data import Interactions, Split, global_split, time_split, unseen_truth
from training.errors import NotEnoughData
from training.metrics import MIN_USERS, K, Paired, paired, user_ndcg
from training.ranker import FEATURES, Trees
from training.recipes import ALS, EASE, ItemKNN, Recipe
from training.scoring import (
    Components,
    components,
    entries,
    rank,
    rank_entries,
    recommend_users,
)

#: The cutoff of the metric recipes are chosen and gated on.
SELECT_CUTOFF: Final = 10
SELECT_ON: Final = f"normalized_discounted_cumulative_gain_at_{SELECT_CUTOFF}"
#: Where the validation folds cut the training data, as shares of its events by time.
FOLDS: Final = (0.8, 0.9)
#: Users scored per fold.
MAX_USERS: Final = 2000
#: Above this many events, folds are drawn from a sample of users with about this many.
TUNING_EVENTS: Final = 2_000_000
#: Seconds of candidate fitting after which the rest of the candidates are skipped.
BUDGET_S: Final = 120.0
HALF_LIVES: Final[tuple[float | None, ...]] = (None, 30.0, 90.0)
TRENDING_HALF_LIVES: Final[tuple[float | None, ...]] = (7.0, 30.0, None)
WEIGHT_GRID: Final = (0.0, 0.1, 0.3, 1.0, 3.0)
EASE_L2: Final = (300.0, 100.0, 1000.0, 30.0)
#: Scored users, over the time-cut folds, below which a fold of each user's newest events is
#: added: fewer users than the gate needs to judge on is too few to choose on.
MIN_VALIDATION_USERS: Final = MIN_USERS


def default_blend(repeats: Repeats = "exclude-purchased") -> Blend:
    """What is served unless validation shows beyond noise that other weights pay: the
    recipe, a little of what is trending, and the given repeat policy."""
    return Blend(repeats=repeats)


def fold_mean(users: np.ndarray) -> float:
    """A fold's metric from its per-user values, as `evaluate` gives it (0 with nobody to
    score)."""
    return float(users.mean()) if len(users) else 0.0


def beyond_noise(chosen: np.ndarray, default: np.ndarray) -> Paired:
    """The chosen option's per-user gain over the default's, paired, with its interval; a
    choice is kept only where `low > 0`."""
    return paired(np.asarray(chosen, np.float64), np.asarray(default, np.float64))


def recipe_candidates(n_items: int, seed: int) -> list[Recipe]:
    """The recipes tried, in order of their usual merit (EASE only where affordable)."""
    found: list[Recipe] = [ItemKNN()]
    if n_items <= EASE.MAX_ITEMS:
        # Lambda's best order of magnitude differs by shop (100 on MovieLens, 500 on retail).
        found += [EASE(l2=l2) for l2 in EASE_L2]
    found += [ALS(factors=64, seed=seed), ALS(factors=128, seed=seed)]
    return found


def label(recipe: Recipe) -> str:
    """A recipe and its parameters that vary, for the manifest and the report."""
    varying = {
        "ease": ("l2",),
        "als": ("factors",),
        "item-knn": ("alpha",),
    }.get(recipe.name, ())
    detail = ", ".join(f"{name} {recipe.params[name]:g}" for name in varying)
    return f"{recipe.name} ({detail})" if detail else recipe.name


def fresh(recipe: Recipe) -> Recipe:
    """An unfitted copy of a recipe with the same parameters."""
    return type(recipe)(**recipe.params)


@dataclass
class Fold:
    """One validation fold and what stays the same across candidates."""

    split: Split
    users: np.ndarray
    unseen_truth: sp.csr_matrix
    #: Held out each user's newest events rather than cut on global time.
    per_user: bool = False


class Fitted(NamedTuple):
    """A recipe fitted on one fold, with the history and matrix it was fitted on (None:
    history and trending alone)."""

    history: History
    matrix: sp.csr_matrix
    recipe: Recipe | None


@dataclass
class Choice:
    """What tuning chose, what it tried, and how long it took."""

    recipe: Recipe | None
    half_life_days: float | None
    blend: Blend
    validation: float
    tried: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: What the data settled before validation had a say, and why.
    rules: list[str] = field(default_factory=list)
    #: The learned second stage, where validation showed it pays (`training.ranker`).
    ranker: Trees | None = None
    #: What the ranker scored on validation beside the blend, and whether it is used.
    ranker_report: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The manifest's `tuning` entry."""
        return {
            "recipe": None if self.recipe is None else label(self.recipe),
            "half_life_days": self.half_life_days,
            "blend": self.blend.to_json(),
            SELECT_ON: self.validation,
            "tried": self.tried,
            "skipped": self.skipped,
            "rules": self.rules,
            "ranker": self.ranker_report,
            "seconds": round(self.seconds, 1),
            "folds": list(FOLDS),
            "min_validation_users": MIN_VALIDATION_USERS,
        }


def folds(log: Interactions, seed: int, within: npt.NDArray[np.bool_] | None = None) -> list[Fold]:
    """The validation folds, inside `within` (the events before the gate's holdout: what
    tuning chose on must not be what the gate judges on), on a sample of users when the shop
    is large."""
    mask = within
    if len(log) > TUNING_EVENTS:
        share = TUNING_EVENTS / len(log)
        keep_user = np.random.default_rng(seed).random(log.n_users) < share
        mask = keep_user[log.user] if mask is None else mask & keep_user[log.user]
    made = []
    for at in FOLDS:
        try:
            split = global_split(log, holdout=1 - at, mask=mask, max_users=MAX_USERS, seed=seed)
        except NotEnoughData:
            continue
        made.append(Fold(split, split.test_users.astype(np.int64), unseen_truth(log, split)))
    if sum(len(fold.users) for fold in made) < MIN_VALIDATION_USERS:
        per_user = _per_user_fold(log, seed, within)
        if per_user is not None:
            made.append(per_user)
    if not made:
        raise NotEnoughData(
            "no validation fold has 10 users with interactions on both sides of its cut; "
            "collect more history"
        )
    return made


def _per_user_fold(
    log: Interactions, seed: int, within: npt.NDArray[np.bool_] | None
) -> Fold | None:
    """A fold holding out each user's newest 10% of events (at least one) within `within`,
    for up to `MAX_USERS` users with 2 or more: Personalize's own evaluation split. Its "now"
    is just after the newest event it trains on."""
    users = log.user if within is None else log.user[within]
    eligible = int((np.bincount(users, minlength=log.n_users) >= 2).sum())
    if eligible < 10:
        return None
    share = min(1.0, MAX_USERS / eligible)
    split = time_split(log, test_users=share, seed=seed, mask=within)
    if not split.train.any():
        return None
    split = replace(split, cut_ms=int(log.ts_ms[split.train].max()) + 1)
    return Fold(split, split.test_users.astype(np.int64), unseen_truth(log, split), True)


def choose(
    log: Interactions,
    weights: dict[str, float],
    *,
    seed: int = 42,
    recipe: str = "auto",
    half_life: float | str | None = "auto",
    repeats: Repeats | str = "auto",
    budget_s: float = BUDGET_S,
    progress: Progress = quiet,
    within: npt.NDArray[np.bool_] | None = None,
) -> Choice:
    """Choose the recipe, half-life, repeat policy and blend weights on validation folds
    cut inside `within` (all events if None)."""
    started = time.perf_counter()
    made = folds(log, seed, within)
    on_time = [f for f in made if not f.per_user]
    progress(
        f"validation: {len(on_time)} folds cut on global time"
        + (", and one of each user's newest events" if len(on_time) < len(made) else "")
        + f", {sum(len(f.users) for f in made):,} users scored"
    )
    rules: list[str] = []
    if len(on_time) < len(made):
        rules.append(
            f"validation: the folds cut on global time score only "
            f"{sum(len(f.users) for f in on_time):,} users, under {MIN_VALIDATION_USERS}, so a "
            "fold of each user's newest events was added"
        )
    candidates = recipe_candidates(log.n_items, seed)
    skipped: list[str] = []
    if log.n_items > EASE.MAX_ITEMS:
        skipped.append(
            f"ease: {log.n_items:,} items, over its {EASE.MAX_ITEMS:,}-item limit (a dense "
            "item x item inverse)"
        )
    if recipe != "auto":
        candidates = [c for c in candidates if c.name == recipe]
        if not candidates:
            raise NotEnoughData(f"recipe {recipe} cannot be used on {log.n_items:,} items")
    half_lives: Sequence[float | None] = HALF_LIVES if half_life == "auto" else (half_life,)  # type: ignore[assignment]
    tried: list[dict[str, Any]] = []

    def discovery(model: Recipe, hl: float | None) -> tuple[float, list[Fitted], np.ndarray]:
        scores, fits, users = [], [], []
        for fold in made:
            history = log.history(weights, fold.split.train, hl)
            matrix = history.weight_matrix(log.n_items)
            fitted = Fitted(history, matrix, fresh(model).fit(matrix))
            fits.append(fitted)
            alone = Blend(collab=1.0, own=0.0, recency=0.0, trending=0.0, repeats="exclude-seen")
            trending = np.zeros(log.n_items, dtype=np.float32)
            best, _ = recommend_users(
                alone,
                fitted.recipe,
                fold.users,
                matrix[fold.users],
                history,
                trending,
                int(fold.split.cut_ms or 0),
                K,
            )
            users.append(user_ndcg(best, fold.unseen_truth, SELECT_CUTOFF))
            # A fold where nobody tried anything new has no discovery to score: 0.
            scores.append(fold_mean(users[-1]))
        value = float(np.mean(scores)) if scores else 0.0
        tried.append({"recipe": label(model), "half_life_days": hl, "discovery_ndcg10": value})
        progress(f"  {label(model):28} half-life {hl or 'none'}: discovery NDCG@10 {value:.4f}")
        return value, fits, np.concatenate(users) if users else np.zeros(0)

    def kept(what: str, chosen: np.ndarray, default: np.ndarray, default_name: str) -> bool:
        """Whether a choice beats its default beyond noise; if not, say so in the rules."""
        gain = beyond_noise(chosen, default)
        if gain.low > 0:
            return True
        rules.append(
            f"{what}: its gain over {default_name} ({gain}) is within noise, so "
            f"{default_name} stays"
        )
        progress(f"  {rules[-1]}")
        return False

    best_recipe: Recipe | None = None
    best_value, best_hl = -1.0, half_lives[0]
    # The best candidate's fits on each fold, kept for the blend rather than refitted; and
    # the first (default) candidate's, to fall back on when the best one's gain is noise.
    best_fits: list[Fitted] = []
    best_users = first_users = np.zeros(0)
    first: tuple[Recipe, float, list[Fitted]] | None = None
    first_hl = half_lives[0]
    for model in candidates:
        if best_recipe is not None and time.perf_counter() - started > budget_s:
            skipped.append(f"{label(model)}: the {budget_s:g} s tuning budget was spent")
            continue
        value, fits, users = discovery(model, first_hl)
        if first is None:
            first, first_users = (model, value, fits), users
        if best_recipe is None or value > best_value:
            best_recipe, best_value, best_fits, best_users = model, value, fits, users
    assert best_recipe is not None
    if (
        first is not None
        and best_recipe is not first[0]
        and not kept(label(best_recipe), best_users, first_users, label(first[0]))
    ):
        best_recipe, best_value, best_fits = first
        best_users = first_users
    at_first_hl = (best_value, best_fits, best_users)
    for hl in half_lives[1:]:
        if time.perf_counter() - started > budget_s:
            skipped.append(f"half-life {hl} days: the {budget_s:g} s tuning budget was spent")
            continue
        value, fits, users = discovery(best_recipe, hl)
        if value > best_value:
            best_value, best_hl, best_fits, best_users = value, hl, fits, users
    if best_hl != first_hl and not kept(
        f"half-life {best_hl} days", best_users, at_first_hl[2], f"half-life {first_hl or 'none'}"
    ):
        best_hl = first_hl
        best_value, best_fits, best_users = at_first_hl
    progress(f"  recipe: {label(best_recipe)}, half-life {best_hl or 'none'}")

    if repeats == "auto" and log.repeat_rates()["any"] == 0.0:
        # A log where nobody ever came back to an item (ratings, say) says so plainly: no
        # validation noise may make seen items come back.
        repeats = "exclude-seen"
        rules.append(
            "repeats exclude-seen: no (user, item) pair occurs twice in the data, so items a user "
            "already had are never recommended"
        )
        progress(f"  {rules[-1]}")
    blend, value, scores = tune_blend(log, made, best_fits, repeats, progress)
    default = default_blend("exclude-purchased" if repeats == "auto" else repeats)  # type: ignore[arg-type]
    if blend != default:
        at_default = scores(default)
        if not kept(
            f"the blend (repeats {blend.repeats}, {blend.describe()})",
            scores(blend),
            at_default,
            f"the default blend (repeats {default.repeats}, {default.describe()})",
        ):
            blend, value = default, float(np.mean(at_default))

    def judge(learned: np.ndarray, own: np.ndarray) -> bool:
        progress(
            f"  learned ranker: NDCG@10 {fold_mean(learned):.4f} against the blend's "
            f"{fold_mean(own):.4f} on the newest fold"
        )
        if not kept("the learned ranker", learned, own, "the blend's own order"):
            return False
        progress(
            f"  the learned ranker orders the list: its gain over the blend's own order "
            f"({beyond_noise(learned, own)}) stands clear of the noise"
        )
        return True

    learning = time.perf_counter()
    ranker, ranker_report = learn_ranker(log, made, best_fits, blend, judge)
    if "why" in ranker_report:
        rules.append(f"the learned ranker: {ranker_report['why']}")
        progress(f"  {rules[-1]}")
    ranker_report["used"] = ranker is not None
    ranker_report["seconds"] = round(time.perf_counter() - learning, 1)
    return Choice(
        recipe=best_recipe if blend.collab > 0 else None,
        half_life_days=best_hl,
        blend=blend,
        validation=value,
        tried=tried,
        skipped=skipped,
        seconds=time.perf_counter() - started,
        rules=rules,
        ranker=ranker,
        ranker_report=ranker_report,
    )


def learn_ranker(
    log: Interactions,
    made: list[Fold],
    fits: list[Fitted],
    blend: Blend,
    judge: Callable[[np.ndarray, np.ndarray], bool],
) -> tuple[Trees | None, dict[str, Any]]:
    """The learned second stage on the folds cut on global time: trained on all but the
    newest, scored there beside the blend's own order, and, where `judge` keeps it on both
    per-user NDCG@10 (the ranker's, the blend's), trained again on every fold. Returns the
    ranker (None: not kept) and its report, which says `why` where it cannot be judged."""
    from training.learned import ROUNDS, fit

    report: dict[str, Any] = {"features": list(FEATURES), "rounds": ROUNDS}
    on_time = [n for n, fold in enumerate(made) if not fold.per_user]
    if len(on_time) < 2:
        report["why"] = (
            "it needs two validation folds cut on global time, one to learn on and a newer "
            "one to judge on; the blend orders the list"
        )
        return None, report
    labelled = []
    for n in on_time:
        fold, fitted = made[n], fits[n]
        now_ms = int(fold.split.cut_ms or 0)
        train = fold.split.train
        trending = trending_scores(
            log.item[train], log.ts_ms[train], log.n_items, blend.trending_half_life_days, now_ms
        )
        parts = components(
            blend,
            fitted.recipe if blend.collab > 0 else None,
            fold.users,
            fitted.matrix[fold.users],
            fitted.history,
            trending,
            top_by_score(trending, blend.candidates),
            now_ms,
        )
        stats = fitted.history.item_stats(log.n_items, now_ms)
        labelled.append((fold, parts, entries(blend, parts, stats)))
    trial = fit([(found, fold.split.truth) for fold, _, found in labelled[:-1]])
    if trial is None:
        report["why"] = "no candidate was touched in the older folds; the blend orders the list"
        return None, report
    fold, parts, found = labelled[-1]
    own = user_ndcg(rank(blend, parts, K)[0], fold.split.truth, SELECT_CUTOFF)
    best, _ = rank_entries(trial, found, parts.seen.shape, K)
    learned = user_ndcg(best, fold.split.truth, SELECT_CUTOFF)
    report.update(
        blend=fold_mean(own), ranker=fold_mean(learned), gain=beyond_noise(learned, own).to_json()
    )
    if not judge(learned, own):
        return None, report
    return fit([(found, fold.split.truth) for fold, _, found in labelled]), report


def tune_blend(
    log: Interactions,
    made: list[Fold],
    fits: list[Fitted],
    repeats: Repeats | str,
    progress: Progress,
) -> tuple[Blend, float, Callable[[Blend], np.ndarray]]:
    """Coordinate ascent over the weights, for each repeat policy and trending half-life,
    with the chosen recipe as fitted on each fold. Returns the best blend, its value, and a
    function giving any blend's per-user NDCG@10 over the folds (for paired comparisons)."""
    parts: dict[tuple[int, float | None], Components] = {}
    for n, (fold, (history, matrix, fitted)) in enumerate(zip(made, fits, strict=True)):
        train = fold.split.train
        for trending_hl in TRENDING_HALF_LIVES:
            trending = trending_scores(
                log.item[train],
                log.ts_ms[train],
                log.n_items,
                trending_hl,
                int(fold.split.cut_ms or 0),
            )
            template = Blend(trending_half_life_days=trending_hl)
            parts[(n, trending_hl)] = components(
                template,
                fitted,
                fold.users,
                matrix[fold.users],
                history,
                trending,
                top_by_score(trending, template.candidates),
                int(fold.split.cut_ms or 0),
            )

    def per_fold(blend: Blend) -> list[np.ndarray]:
        """Each fold's per-user NDCG@10 of what `blend` would serve."""
        return [
            user_ndcg(
                rank(blend, parts[(n, blend.trending_half_life_days)], K)[0],
                f.split.truth,
                SELECT_CUTOFF,
            )
            for n, f in enumerate(made)
        ]

    def value(blend: Blend) -> float:
        return float(np.mean([fold_mean(users) for users in per_fold(blend)]))

    def per_user(blend: Blend) -> np.ndarray:
        return np.concatenate(per_fold(blend))

    policies: Sequence[Repeats] = REPEAT_POLICIES if repeats == "auto" else (repeats,)  # type: ignore[assignment]
    best, best_value = Blend(), -1.0
    middle = TRENDING_HALF_LIVES[1]
    for policy in policies:
        # The user's own items cannot come back under "exclude-seen": their weights are moot there.
        names = ("trending",) if policy == "exclude-seen" else ("own", "recency", "trending")
        # With and without the recipe: an ascent from one start can stall where dropping
        # (or keeping) the recipe alone looks worse than the blend it leads to.
        for collab in (1.0, 0.0):
            current = Blend(
                collab=collab,
                own=0.0,
                recency=0.0,
                trending=1.0 if collab == 0 else 0.0,
                repeats=policy,
                trending_half_life_days=middle,
            )
            current_value = value(current)
            for _ in range(2):
                for name in names:
                    for option in WEIGHT_GRID:
                        change: dict[str, Any] = {name: option}
                        trial = replace(current, **change)
                        if not any(trial.weights):
                            continue
                        trial_value = value(trial)
                        if trial_value > current_value + 1e-9:
                            current, current_value = trial, trial_value
            progress(
                f"  repeats {policy:17} {'with' if collab else 'without'} the recipe: NDCG@10 "
                f"{current_value:.4f}, weights {current.describe()}"
            )
            if current_value > best_value:
                best, best_value = current, current_value
    if best.trending > 0:
        for trending_hl in TRENDING_HALF_LIVES:
            for option in WEIGHT_GRID[1:]:
                trial = replace(best, trending_half_life_days=trending_hl, trending=option)
                trial_value = value(trial)
                if trial_value > best_value + 1e-9:
                    best, best_value = trial, trial_value
    progress(
        f"  blend: repeats {best.repeats}, weights {best.describe()}, trending half-life "
        f"{best.trending_half_life_days or 'none'}: NDCG@10 {best_value:.4f}"
    )
    return best, best_value, per_user
