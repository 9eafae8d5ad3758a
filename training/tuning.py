"""Settings chosen from the data, every run, on validation splits cut on global time.

Nothing about the served blend is fixed in advance: the recipe and its main parameters, the
recency half-life of a user's history, whether a user's own items come back, and how much
the user's history, the recipe and what is trending each weigh. Two validation folds cut the
training data on global time (at 80% and 90% of the events); a fold trains on what came
before its cut and scores what each user did after it. Scores are averaged over the folds.

1. The recipe: each candidate, then the best one under each half-life, is fitted on each
   fold and scored alone on what users did that they had never done before (discovery is
   the recipe's job; the user's own history is the blend's). The folds are
   `training.validation`'s.
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
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from common.progress import Progress, quiet
from training.blend import REPEAT_POLICIES, Blend, Repeats, top_by_score, trending_scores
from training.data import Interactions
from training.errors import NotEnoughData
from training.metrics import K, Paired, user_ndcg
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
from training.validation import (
    FOLDS,
    MIN_VALIDATION_USERS,
    Fitted,
    Fold,
    beyond_noise,
    fold_mean,
    folds,
)

#: The cutoff of the metric recipes are chosen and gated on.
SELECT_CUTOFF: Final = 10
SELECT_ON: Final = f"normalized_discounted_cumulative_gain_at_{SELECT_CUTOFF}"
#: Seconds of candidate fitting after which the rest of the candidates are skipped.
BUDGET_S: Final = 120.0
HALF_LIVES: Final[tuple[float | None, ...]] = (None, 30.0, 90.0)
TRENDING_HALF_LIVES: Final[tuple[float | None, ...]] = (7.0, 30.0, None)
WEIGHT_GRID: Final = (0.0, 0.1, 0.3, 1.0, 3.0)
EASE_L2: Final = (300.0, 100.0, 1000.0, 30.0)


def default_blend(repeats: Repeats = "exclude-purchased") -> Blend:
    """What is served unless validation shows beyond noise that other weights pay: the
    recipe, a little of what is trending, and the given repeat policy."""
    return Blend(repeats=repeats)


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
    #: The served blend against the same blend without the recipe, on validation: what the
    #: recipe adds (None where the blend has no recipe).
    recipe_adds: Paired | None = None

    def recipe_note(self) -> str:
        """What the recipe adds to what is served, in a phrase (empty where it is clear)."""
        gain = self.recipe_adds
        if gain is None or gain.low > 0:
            return ""
        return (
            f"{label(self.recipe) if self.recipe else 'the recipe'} adds nothing measurable to "
            f"the blend without it ({gain})"
        )

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
            "recipe_adds": None if self.recipe_adds is None else self.recipe_adds.to_json(),
            "seconds": round(self.seconds, 1),
            "folds": list(FOLDS),
            "min_validation_users": MIN_VALIDATION_USERS,
        }


@dataclass
class _Scored:
    """A recipe at a half-life: its mean discovery NDCG@10, its fits on each fold (kept for
    the blend rather than refitted) and each scored user's NDCG, for the noise test."""

    recipe: Recipe
    half_life: float | None
    value: float
    fits: list[Fitted]
    users: np.ndarray


@dataclass
class _Tuning:
    """One `choose`: the folds, what it tried and skipped, the rules it applied, its clock."""

    log: Interactions
    weights: dict[str, float]
    made: list[Fold]
    budget_s: float
    progress: Progress
    started: float = field(default_factory=time.perf_counter)
    rules: list[str] = field(default_factory=list)
    tried: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    recipe_adds: Paired | None = None

    def spent(self) -> bool:
        """Whether the tuning budget is spent."""
        return time.perf_counter() - self.started > self.budget_s

    def discovery(self, model: Recipe, hl: float | None) -> _Scored:
        """The recipe alone, fitted on each fold's training events with half-life `hl`, scored
        on the items each user had never touched."""
        log, scores, fits, users = self.log, [], [], []
        for fold in self.made:
            history = log.history(self.weights, fold.split.train, hl)
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
        self.tried.append({"recipe": label(model), "half_life_days": hl, "discovery_ndcg10": value})
        self.progress(
            f"  {label(model):28} half-life {hl or 'none'}: discovery NDCG@10 {value:.4f}"
        )
        return _Scored(model, hl, value, fits, np.concatenate(users) if users else np.zeros(0))

    def kept(self, what: str, chosen: np.ndarray, default: np.ndarray, default_name: str) -> bool:
        """Whether a choice beats its default beyond noise; if not, say so in the rules."""
        gain = beyond_noise(chosen, default)
        if gain.low > 0:
            return True
        self.say(f"{what}: its gain over {default_name} ({gain}) is within noise, so "
                 f"{default_name} stays")  # fmt: skip
        return False

    def skip(self, why: str) -> None:
        """A candidate left untried, in the manifest and on screen."""
        self.skipped.append(why)
        self.progress(f"  skipped {why}")

    def say(self, rule: str) -> None:
        """A rule the data settled, in the manifest and on screen."""
        self.rules.append(rule)
        self.progress(f"  {rule}")

    def recipe(self, candidates: list[Recipe], hl: float | None) -> _Scored:
        """The best candidate at half-life `hl`, unless its gain over the first (default)
        one is noise; once the budget is spent, the candidates left are skipped."""
        best: _Scored | None = None
        first: _Scored | None = None
        for model in candidates:
            if best is not None and self.spent():
                self.skip(f"{label(model)}: the {self.budget_s:g} s tuning budget was spent")
                continue
            scored = self.discovery(model, hl)
            first = first or scored
            if best is None or scored.value > best.value:
                best = scored
        assert best is not None
        assert first is not None
        if best is not first and not self.kept(
            label(best.recipe), best.users, first.users, label(first.recipe)
        ):
            return first
        return best

    def half_life(self, at_first: _Scored, half_lives: Sequence[float | None]) -> _Scored:
        """The chosen recipe at each other half-life; the best, unless its gain is noise."""
        best = at_first
        for hl in half_lives:
            if self.spent():
                self.skipped.append(
                    f"half-life {hl} days: the {self.budget_s:g} s tuning budget was spent"
                )
                continue
            scored = self.discovery(at_first.recipe, hl)
            if scored.value > best.value:
                best = scored
        if best is not at_first and not self.kept(
            f"half-life {best.half_life} days",
            best.users,
            at_first.users,
            f"half-life {at_first.half_life or 'none'}",
        ):
            return at_first
        return best

    def blend(
        self, fits: list[Fitted], repeats: Repeats | str, *, keep_recipe: bool = False
    ) -> tuple[Blend, float]:
        """The blend's weights and repeat policy; the default blend unless the tuned one
        beats it beyond noise. A log where nothing repeats never gets seen items back.
        `keep_recipe` (a recipe named by the user) keeps the recipe in the blend."""
        if repeats == "auto" and self.log.repeat_rates()["any"] == 0.0:
            # A log where nobody ever came back to an item (ratings, say) says so plainly: no
            # validation noise may make seen items come back.
            repeats = "exclude-seen"
            self.say(
                "repeats exclude-seen: no (user, item) pair occurs twice in the data, so items "
                "a user already had are never recommended"
            )
        blend, value, scores = tune_blend(
            self.log, self.made, fits, repeats, self.progress, keep_recipe=keep_recipe
        )
        default = default_blend("exclude-purchased" if repeats == "auto" else repeats)  # type: ignore[arg-type]
        if blend != default:
            at_default = scores(default)
            if not self.kept(
                f"the blend (repeats {blend.repeats}, {blend.describe()})",
                scores(blend),
                at_default,
                f"the default blend (repeats {default.repeats}, {default.describe()})",
            ):
                blend, value = default, float(np.mean(at_default))
        if blend.collab > 0:
            self.recipe_adds = self._recipe_adds(blend, scores)
        return blend, value

    def _recipe_adds(self, blend: Blend, scores: Callable[[Blend], np.ndarray]) -> Paired:
        """The served blend against itself without the recipe (trending alone where nothing
        else is left), said on screen and kept in the manifest."""
        without = replace(blend, collab=0.0, trending=blend.trending or 1.0)
        gain = beyond_noise(scores(blend), scores(without))
        verdict = "adds" if gain.low > 0 else "adds nothing measurable to what is served:"
        self.progress(
            f"  the recipe {verdict} over the blend without it ({without.describe()}): {gain}"
        )
        return gain

    def ranker(self, fits: list[Fitted], blend: Blend) -> tuple[Trees | None, dict[str, Any]]:
        """The learned second stage, where it beats the blend's own order beyond noise."""

        def judge(learned: np.ndarray, own: np.ndarray) -> bool:
            self.progress(
                f"  learned ranker: NDCG@10 {fold_mean(learned):.4f} against the blend's "
                f"{fold_mean(own):.4f} on the newest fold"
            )
            if not self.kept("the learned ranker", learned, own, "the blend's own order"):
                return False
            self.progress(
                f"  the learned ranker orders the list: its gain over the blend's own order "
                f"({beyond_noise(learned, own)}) stands clear of the noise"
            )
            return True

        learning = time.perf_counter()
        ranker, report = learn_ranker(self.log, self.made, fits, blend, judge)
        if "why" in report:
            self.say(f"the learned ranker: {report['why']}")
        report["used"] = ranker is not None
        report["seconds"] = round(time.perf_counter() - learning, 1)
        return ranker, report


def _candidates(log: Interactions, seed: int, recipe: str, tuning: _Tuning) -> list[Recipe]:
    """The recipes to try: every affordable one, or the one asked for."""
    candidates = recipe_candidates(log.n_items, seed)
    if log.n_items > EASE.MAX_ITEMS:
        tuning.skip(
            f"ease: {log.n_items:,} items, over its {EASE.MAX_ITEMS:,}-item limit (a dense "
            "item x item inverse)"
        )
    if recipe != "auto":
        candidates = [c for c in candidates if c.name == recipe]
        if not candidates:
            raise NotEnoughData(f"recipe {recipe} cannot be used on {log.n_items:,} items")
    return candidates


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
    cut inside `within` (all events if None): the recipe at the first half-life, then its
    half-life, then the blend, then the learned ranker, each kept at its default unless
    the gain is beyond noise."""
    started = time.perf_counter()
    made = folds(log, seed, within)
    tuning = _Tuning(log, weights, made, budget_s, progress, started)
    on_time = [f for f in made if not f.per_user]
    progress(
        f"validation: {len(on_time)} folds cut on global time"
        + (", and one of each user's newest events" if len(on_time) < len(made) else "")
        + f", {sum(len(f.users) for f in made):,} users scored"
    )
    if len(on_time) < len(made):
        tuning.rules.append(
            f"validation: the folds cut on global time score only "
            f"{sum(len(f.users) for f in on_time):,} users, under {MIN_VALIDATION_USERS}, so a "
            "fold of each user's newest events was added"
        )
    candidates = _candidates(log, seed, recipe, tuning)
    half_lives: Sequence[float | None] = HALF_LIVES if half_life == "auto" else (half_life,)  # type: ignore[assignment]
    best = tuning.half_life(tuning.recipe(candidates, half_lives[0]), half_lives[1:])
    progress(f"  recipe: {label(best.recipe)}, half-life {best.half_life or 'none'}")
    # A recipe the user named stays in what is served: the blend is tuned around it.
    blend, value = tuning.blend(best.fits, repeats, keep_recipe=recipe != "auto")
    ranker, ranker_report = tuning.ranker(best.fits, blend)
    return Choice(
        recipe=best.recipe if blend.collab > 0 else None,
        half_life_days=best.half_life,
        blend=blend,
        validation=value,
        tried=tuning.tried,
        skipped=tuning.skipped,
        seconds=time.perf_counter() - started,
        rules=tuning.rules,
        ranker=ranker,
        ranker_report=ranker_report,
        recipe_adds=tuning.recipe_adds,
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


def _components(
    log: Interactions, made: list[Fold], fits: list[Fitted]
) -> dict[tuple[int, float | None], Components]:
    """Each fold's blend components at each trending half-life, computed once for every
    blend the ascent tries."""
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
    return parts


def _ascend(
    current: Blend, names: Sequence[str], value: Callable[[Blend], float]
) -> tuple[Blend, float]:
    """Two rounds of coordinate ascent over the named weights, on `WEIGHT_GRID`."""
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
    return current, current_value


def tune_blend(
    log: Interactions,
    made: list[Fold],
    fits: list[Fitted],
    repeats: Repeats | str,
    progress: Progress,
    *,
    keep_recipe: bool = False,
) -> tuple[Blend, float, Callable[[Blend], np.ndarray]]:
    """Coordinate ascent over the weights, for each repeat policy and trending half-life,
    with the chosen recipe as fitted on each fold. Returns the best blend, its value, and a
    function giving any blend's per-user NDCG@10 over the folds (for paired comparisons).
    With `keep_recipe`, every blend tried keeps the recipe at its full weight."""
    parts = _components(log, made, fits)

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
        for collab in (1.0,) if keep_recipe else (1.0, 0.0):
            current = Blend(
                collab=collab,
                own=0.0,
                recency=0.0,
                trending=1.0 if collab == 0 else 0.0,
                repeats=policy,
                trending_half_life_days=middle,
            )
            current, current_value = _ascend(current, names, value)
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
