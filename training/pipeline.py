"""`recs train`: choose, from the data, what to serve; fit it on everything; write it out.

1. Read every curated interaction.
2. Tune (`training.tuning`): on validation folds cut on global time, choose the recipe and
   its parameters, the recency half-life, the repeat policy and the blend's weights.
3. Evaluate on the holdout (the newest 10% of events, by time; or Personalize's per-user
   holdout with `holdout="per-user"`): the served blend beside popularity and trending, and,
   through the promotion gate, beside the version in production.
4. Refit on every event and write `models/<version>/` (the recipe's arrays, the users'
   histories, trending, the id maps, `manifest.json` saying what was chosen and why) and
   `batch/<version>/` (every user's and item's recommendations, Personalize's batch format).
   A user with nothing that scores above 0 is left out of the batch: the API answers them
   with trending items.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from common.contract import format_ts
from common.lake import Lake
from common.layout import BATCH, MODELS
from common.progress import Progress, quiet
from training.artifacts import OWN_HISTORY, SERVED, batch_lines, npz_bytes
from training.attributes import AGE_DAYS, Catalog, NewItemsReport, catalog_fields, read_catalog
from training.blend import OWN_THEN_POPULAR, POPULARITY, TRENDING, Blend, History, trending_scores
from training.data import (
    DEFAULT_WEIGHTS,
    Interactions,
    Split,
    global_split,
    item_categories,
    load_events,
    time_split,
    unseen_truth,
)
from training.errors import NotEnoughData
from training.exploration import explore_holdout, explored_batches, refit_new_items
from training.freshness import data_fingerprint
from training.gate import (
    NO_PRODUCTION,
    GateResult,
    decide,
    newer_split,
    rank_published,
)
from training.item_fields import ItemFields
from training.metrics import EVAL_USERS, MIN_USERS, K, evaluate, paired, user_ndcg
from training.new_items import NewItems
from training.published import PublishedModel
from training.recipes import ItemKNN, Popularity, Recipe
from training.registry import manifest_key, production_version, version_name
from training.report import figure, markdown
from training.scoring import rank_split, recommend_users
from training.similar import MIN_EVENTS, MIN_SHARED, RelatedReport, related_items
from training.tuning import BUDGET_S, SELECT_CUTOFF, SELECT_ON, Choice, choose, fresh, label

Holdout = Literal["time", "per-user"]


@dataclass(frozen=True)
class TrainOptions:
    """What `recs train`'s flags choose; each defaults to what the data decides ("auto")."""

    #: Each event type's weight in a user's history.
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    seed: int = 42
    #: A recipe's name, or "auto" to choose on validation.
    recipe: str = "auto"
    #: Days, None for no decay, or "auto".
    half_life: float | str | None = "auto"
    #: exclude-seen, exclude-purchased, allow, or "auto" (`training.blend.REPEAT_POLICIES`).
    repeats: str = "auto"
    holdout: Holdout = "time"
    #: Seconds of candidate fitting in tuning.
    budget_s: float = BUDGET_S
    #: Train on the last that many days of events only; None for all of them.
    window_days: int | None = None
    #: The share of each list kept for young items (`training.new_items`), or "auto": what
    #: the holdout supports.
    exploration: float | str = "auto"
    #: Days an item counts as young, for exploration.
    exploration_age_days: float = AGE_DAYS
    #: What the curated zone held when training read it (`training.freshness`), kept in the
    #: manifest so that a night with nothing new can tell.
    source: str | None = None


@dataclass
class TrainReport:
    """What a training run chose and wrote."""

    version: str
    chosen: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    gate: GateResult | None = None
    related: RelatedReport = field(default_factory=lambda: RelatedReport(0, 0))
    #: NDCG@10 of each ranked answer on items its users had never touched.
    discovery: dict[str, float] = field(default_factory=dict)
    tuning: Choice | None = None
    new_items: NewItemsReport = field(default_factory=NewItemsReport)
    users_served: int = 0
    users_left_to_popular: int = 0

    @property
    def approved(self) -> bool:
        """Whether the promotion gate lets `recs publish` make this version live."""
        return self.gate is not None and self.gate.passed


def _versions() -> dict[str, str]:
    names = ("recs", "numpy", "scipy", "implicit", "lightgbm", "pyarrow", "duckdb")
    found = {name: metadata.version(name) for name in names}
    return found | {"python": platform.python_version()}


def train(
    lake: Lake,
    options: TrainOptions | None = None,
    *,
    now: datetime | None = None,
    progress: Progress = quiet,
) -> TrainReport:
    """Tune, evaluate, refit and write one model version; see the module docstring.

    `options.window_days` trains on the last that many days only (up to the day before
    `now`): a big shop's nightly run then reads, holds and fits a bounded slice, and a
    full-history run on a longer schedule keeps long cycles in view (docs/deploy.md)."""
    options = options or TrainOptions()
    now = now or datetime.now(UTC)
    days = options.window_days
    options = replace(options, source=data_fingerprint(lake, days))
    log = load_events(lake, (now - timedelta(days=days)).date() if days else None)
    return train_on(lake, log, options, now=now, progress=progress)


def train_on(
    lake: Lake,
    log: Interactions,
    options: TrainOptions | None = None,
    *,
    now: datetime,
    progress: Progress = quiet,
) -> TrainReport:
    """`train` on events already loaded: tune, then the holdout and the gate, then refit on
    every event, then write."""
    options = options or TrainOptions()
    if not any(options.weights.get(k, 0.0) > 0 for k in ("view", "add_to_cart", "purchase")):
        raise NotEnoughData("every weight is zero: check the event weights")
    _describe(log, progress)
    split = (
        global_split(log, max_users=EVAL_USERS, seed=options.seed)
        if options.holdout == "time"
        else time_split(log, seed=options.seed)
    )
    report = _tune(log, options, split, version_name(now), progress)
    served = _evaluate(lake, log, options, split, report, progress)
    catalog = read_catalog(lake)
    report.new_items = explore_holdout(
        catalog, log, options.weights, _choice(report), split, served, options, progress
    )
    fitted = _refit(lake, log, options, report, progress, catalog)
    _write(lake, fitted, now)
    return report


def _describe(log: Interactions, progress: Progress) -> None:
    """The data's size, span and repeat habits, on screen."""
    first = datetime.fromtimestamp(log.ts_ms.min() / 1000, UTC)
    last = datetime.fromtimestamp(log.ts_ms.max() / 1000, UTC)
    progress(
        f"data: {len(log):,} interactions, {log.n_users:,} users, {log.n_items:,} items, "
        f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
        + (f" (window: since {log.since})" if log.since else " (all history)")
    )
    rates = log.repeat_rates()
    progress(
        f"repeats: {rates['any']:.1%} of events come back to an item the user already had ("
        + ", ".join(f"{name} {rate:.1%}" for name, rate in rates.items() if name != "any")
        + ")"
    )


def _tune(
    log: Interactions, options: TrainOptions, split: Split, version: str, progress: Progress
) -> TrainReport:
    """Step 2: choose on validation folds, inside what the holdout trains on."""
    started = time.perf_counter()
    # Tuning sees only what the holdout trains on: a blend chosen on the events the gate
    # then judges it on would be judged on its own validation, which only favours it.
    choice = choose(
        log,
        dict(options.weights),
        seed=options.seed,
        recipe=options.recipe,
        half_life=options.half_life,
        repeats=options.repeats,
        budget_s=options.budget_s,
        progress=progress,
        within=split.train,
    )
    report = TrainReport(version=version, chosen=_chosen(choice), tuning=choice)
    report.seconds["tuning"] = round(time.perf_counter() - started, 1)
    return report


def _choice(report: TrainReport) -> Choice:
    """What tuning chose, which every step after it reads from the report."""
    assert report.tuning is not None, "tuning comes first"
    return report.tuning


def _evaluate(
    lake: Lake,
    log: Interactions,
    options: TrainOptions,
    split: Split,
    report: TrainReport,
    progress: Progress,
) -> npt.NDArray[np.int64]:
    """Step 3: the served blend and its peers on the holdout, then the promotion gate; what
    is served to the holdout's users."""
    choice = _choice(report)
    progress(f"holdout ({options.holdout}): {split.n_test:,} users scored")
    started = time.perf_counter()
    ranked = _holdout_ranked(log, dict(options.weights), choice, split)
    if choice.ranker is not None and not _ranker_confirmed(choice, ranked, split, progress):
        choice.ranker = None
        ranked[SERVED] = ranked.pop(WITHOUT_RANKER)
        report.chosen = _chosen(choice)
    report.metrics = {name: evaluate(best, split.truth) for name, best in ranked.items()}
    # Discovery: the same answers scored on the items each user had never touched.
    unseen = unseen_truth(log, split)
    report.discovery = {name: evaluate(best, unseen)[SELECT_ON] for name, best in ranked.items()}
    report.seconds["evaluation"] = round(time.perf_counter() - started, 1)
    for name, metrics in report.metrics.items():
        progress(
            f"  {name:24} NDCG@10 {metrics[SELECT_ON]:.4f}  recall@20 {metrics['recall_at_20']:.4f}"
            f"  on unseen items NDCG@10 {report.discovery[name]:.4f}"
        )
    report.gate = _gate(lake, log, split, report, ranked)
    return ranked[SERVED]


@dataclass
class Fitted:
    """One version refit on every event: everything `_write` turns into files."""

    report: TrainReport
    options: TrainOptions
    log: Interactions
    final: Recipe | None
    similar: Recipe
    history: History
    trending: npt.NDArray[np.float32]
    popular: Popularity
    categories: dict[str, str]
    batches: dict[str, bytes]
    new_items: NewItems
    #: The catalog's fields of every code, for filters (`training.item_fields`).
    fields: ItemFields

    @property
    def choice(self) -> Choice:
        return _choice(self.report)


def _refit(
    lake: Lake,
    log: Interactions,
    options: TrainOptions,
    report: TrainReport,
    progress: Progress,
    catalog: Catalog,
) -> Fitted:
    """Step 4: the chosen recipe and blend fit on every event, each user's and item's
    recommendations ranked for the batch."""
    choice = _choice(report)
    started = time.perf_counter()
    progress("refit on every event and write the batch output")
    history = log.history(options.weights, None, choice.half_life_days)
    matrix = history.weight_matrix(log.n_items)
    final = fresh(choice.recipe).fit(matrix) if choice.recipe is not None else None
    if final is not None:
        report.params[final.name] = dict(final.params)
    newest_ms = int(log.ts_ms.max())
    trending = trending_scores(
        log.item, log.ts_ms, log.n_items, choice.blend.trending_half_life_days, newest_ms
    )
    users = np.arange(log.n_users, dtype=np.int64)
    user_best, user_scores = recommend_users(
        choice.blend, final, users, matrix, history, trending, newest_ms, K, choice.ranker
    )
    served = user_best[:, 0] >= 0
    report.users_served = int(served.sum())
    report.users_left_to_popular = int((~served).sum())
    popular = Popularity().fit(log.matrix(options.weights))
    # Related items are a pairwise question (who touched this also touched that), which
    # item-kNN's co-occurrence answers; ALS has no item neighbours of its own, and EASE's
    # weights are partial effects given everything else a user has, not pairwise ones (on
    # MovieLens its lists found the next item 0.84x as often as a plain cosine's).
    similar: Recipe = final if isinstance(final, ItemKNN) else ItemKNN().fit(matrix)
    categories = item_categories(lake)
    item_best, item_scores = similar.related(np.arange(log.n_items, dtype=np.int64), K)
    item_best, item_scores, report.related = related_items(
        log,
        categories,
        popular.popularity,
        item_best,
        item_scores,
        alpha=float(similar.params["alpha"]) if isinstance(similar, ItemKNN) else None,
    )
    new_items = refit_new_items(catalog, log, report.new_items, options)
    user_best, user_scores, item_best, item_scores = explored_batches(
        new_items, history, users, user_best, user_scores, item_best, item_scores
    )
    report.seconds["refit"] = round(time.perf_counter() - started, 1)
    progress(
        f"  {report.users_served:,} users get recommendations, "
        f"{report.users_left_to_popular:,} get trending items (nothing of theirs scored); "
        f"{report.new_items.young:,} young items, {report.new_items.cold:,} of them without "
        "events yet"
    )
    every_id = np.concatenate([log.item_ids, new_items.cold_ids]).astype(str)
    batches = {
        "users": batch_lines(
            "userId", log.user_ids[served], every_id, user_best[served], user_scores[served]
        ),
        "items": batch_lines("itemId", every_id, every_id, item_best, item_scores),
    }
    return Fitted(
        report, options, log, final, similar, history, trending, popular, categories, batches,
        new_items, catalog_fields(catalog, every_id),
    )  # fmt: skip


def _chosen(choice: Choice) -> str:
    chosen = "history and trending" if choice.recipe is None else label(choice.recipe)
    return chosen + (", reranked by a learned ranker" if choice.ranker is not None else "")


#: The holdout row of the served blend in its own order, where a learned ranker reorders it.
WITHOUT_RANKER: Final = "served, without the ranker"


def _ranker_confirmed(
    choice: Choice, ranked: dict[str, npt.NDArray[np.int64]], split: Split, progress: Progress
) -> bool:
    """Whether the learned ranker also beats the blend's own order on the holdout, newer than
    the folds it was judged on; recorded in the manifest either way.

    Validation showed its gain beyond noise on an older window; a ranker whose gain does not
    carry forward in time (on a small shop whose last days differ from the rest, it can
    lose) serves the blend's order instead. Choosing between the two on the holdout favours
    the served figure a little, by at most the noise between two close orderings."""
    gain = paired(
        user_ndcg(ranked[SERVED], split.truth, SELECT_CUTOFF),
        user_ndcg(ranked[WITHOUT_RANKER], split.truth, SELECT_CUTOFF),
    )
    choice.ranker_report["holdout"] = gain.to_json()
    confirmed = gain.difference > 0
    choice.ranker_report["used"] = confirmed
    verdict = "it serves" if confirmed else "it is dropped, and the blend's own order serves"
    line = f"learned ranker on the holdout, over the blend's own order: {gain}: {verdict}"
    if not confirmed:
        choice.rules.append(line)
    progress(f"  {line}")
    return confirmed


def _holdout_ranked(
    log: Interactions, weights: dict[str, float], choice: Choice, split: Split
) -> dict[str, npt.NDArray[np.int64]]:
    """What is served, and the baselines, ranked for the holdout by the serving path."""
    history = log.history(weights, split.train, choice.half_life_days)
    matrix = history.weight_matrix(log.n_items)
    model = fresh(choice.recipe).fit(matrix) if choice.recipe is not None else None

    def served(blend: Blend, recipe: Recipe | None) -> npt.NDArray[np.int64]:
        return rank_split(blend, recipe, log, split, history, matrix, K)

    ranked = {
        SERVED: rank_split(choice.blend, model, log, split, history, matrix, K, choice.ranker)
    }
    if choice.ranker is not None:
        # What the ranker added: the same candidates in the blend's own order.
        ranked[WITHOUT_RANKER] = served(choice.blend, model)
    ranked["popularity-count"] = served(POPULARITY, None)
    ranked["trending"] = served(TRENDING, None)
    ranked[OWN_HISTORY] = served(OWN_THEN_POPULAR, None)
    if model is not None:
        alone = Blend(collab=1.0, trending=0.0, repeats=choice.blend.repeats)
        ranked[f"{model.name} alone"] = served(alone, model)
    return ranked


def _gate(
    lake: Lake,
    log: Interactions,
    split: Split,
    report: TrainReport,
    ranked: dict[str, npt.NDArray[np.int64]],
) -> GateResult:
    """The served blend must beat popularity, and production on events it never saw (or, when
    too few users have such events, on the whole holdout, where production has seen them)."""
    live = production_version(lake)
    no_production = NO_PRODUCTION
    notes: list[str] = []
    judged, production_ranked = split, None
    if live is not None:
        model = PublishedModel.load(lake, live)
        newer = newer_split(log, split, model.last_event_ms)
        users = 0 if newer is None else _scored_users(newer)
        if newer is not None and (users >= MIN_USERS or newer.truth.nnz == split.truth.nnz):
            judged = newer  # all three on the same events: those production never saw
        else:
            notes.append(
                f"only {users:,} held-out users have events newer than production {live}'s "
                f"data: too thin to judge on (at least {MIN_USERS} are needed), so production "
                f"was compared on the candidate's whole holdout ({_scored_users(split):,} "
                "users), where it has seen some of the events (which can only favour it)"
            )
        production_ranked = rank_published(model, log, judged, K)
    # Where the served blend lets a user's own items come back, replaying their own history
    # is the bar to clear, beside popularity.
    repeats = report.tuning is not None and report.tuning.blend.repeats != "exclude-seen"
    gains = {
        name: user_ndcg(rows, judged.truth, SELECT_CUTOFF)
        for name, rows in (
            ("candidate", ranked[SERVED]),
            ("popularity", ranked["popularity-count"]),
            ("own history", ranked[OWN_HISTORY] if repeats else None),
            ("production", production_ranked),
        )
        if rows is not None
    }
    evidence = {
        name: paired(gains["candidate"], gains[name]) for name in gains if name != "candidate"
    }
    candidate = evaluate(ranked[SERVED], judged.truth)
    popularity = evaluate(ranked["popularity-count"], judged.truth)
    live_metrics = None
    if production_ranked is not None:
        live_metrics = evaluate(production_ranked, judged.truth)
        report.metrics[f"production {live}"] = live_metrics
    own = evaluate(ranked[OWN_HISTORY], judged.truth) if repeats else None
    return decide(
        SELECT_ON,
        candidate,
        popularity,
        live_metrics,
        live,
        no_production,
        evidence,
        tuple(notes),
        own_history=own,
    )


def _scored_users(split: Split) -> int:
    """Test users with held-out events to score."""
    return int((np.diff(split.truth.tocsr().indptr) > 0).sum())


def _write(lake: Lake, fitted: Fitted, now: datetime) -> None:
    """The version's artifacts, batch output, report and, last, its manifest."""
    report, popular = fitted.report, fitted.popular
    prefix = f"{MODELS}/{report.version}"
    artifacts = _artifacts(fitted)
    for name, arrays in artifacts.items():
        lake.write_bytes(f"{prefix}/{name}", npz_bytes(arrays))
        report.files.append(f"{prefix}/{name}")
    batch = f"{BATCH}/{report.version}"
    for name, body in fitted.batches.items():
        lake.write_bytes(f"{batch}/{name}.jsonl", body)
        report.files.append(f"{batch}/{name}.jsonl")

    lake.write_bytes(f"{prefix}/report.png", figure(report.metrics, popular.popularity))
    gate_reasons = report.gate.reasons if report.gate else []
    text = markdown(report.version, report.chosen, report.metrics, gate_reasons, popular.popularity)
    lake.write_bytes(f"{prefix}/report.md", text.encode())
    report.files += [f"{prefix}/report.md", f"{prefix}/report.png"]
    manifest = _manifest(fitted, sorted(artifacts), now)
    lake.write_bytes(manifest_key(report.version), json.dumps(manifest, indent=2).encode())
    report.files.append(manifest_key(report.version))


def _artifacts(fitted: Fitted) -> dict[str, dict[str, Any]]:
    """The version's arrays, by file name."""
    log, history, categories = fitted.log, fitted.history, fitted.categories
    artifacts: dict[str, dict[str, Any]] = {
        # Serving filters by category and answers unknown items without reading the lake.
        "ids.npz": {
            "user_ids": log.user_ids,
            "item_ids": log.item_ids,
            "item_categories": np.array(
                [categories.get(i, "") for i in log.item_ids.tolist()], dtype=str
            ),
        },
        "history.npz": history.arrays(),
        # What serving needs of the history without holding every user's (RECS_MODEL_USERS
        # =store): the ranker's item statistics at the newest event, and the decay.
        "item-stats.npz": {
            "item_stats": history.item_stats(log.n_items, int(log.ts_ms.max())),
            "half_life_days": np.array(
                np.nan if history.half_life_days is None else history.half_life_days
            ),
        },
        "similar-items.npz": fitted.similar.arrays(),
        "popularity-count.npz": fitted.popular.arrays(),
        "trending.npz": {"popularity": fitted.trending},
    }
    artifacts["item-fields.npz"] = fitted.fields.arrays()
    if len(fitted.new_items.young) or len(fitted.new_items.cold_ids):
        artifacts["new-items.npz"] = fitted.new_items.arrays()
    if fitted.final is not None:
        artifacts["user-personalization.npz"] = fitted.final.arrays()
    if fitted.choice.ranker is not None:
        artifacts["ranker.npz"] = fitted.choice.ranker.arrays()
    return artifacts


def _manifest(fitted: Fitted, artifacts: list[str], now: datetime) -> dict[str, Any]:
    """What the version is, what chose it and on what evidence (`training.registry`)."""
    report, log, choice, final = fitted.report, fitted.log, fitted.choice, fitted.final
    prefix, batch = f"{MODELS}/{report.version}", f"{BATCH}/{report.version}"
    return {
        "version": report.version,
        "created_at": format_ts(now),
        "recipe": report.chosen,  # what the version serves, in words
        "chosen": final.name if final is not None else None,
        "chosen_label": report.chosen,
        "selected_on": SELECT_ON,
        "params": report.params,
        "blend": choice.blend.to_json(),
        "tuning": choice.to_json(),
        "holdout": fitted.options.holdout,
        "metrics": report.metrics,
        "discovery_ndcg_at_10": report.discovery,
        "baseline": "popularity-count",
        "status": "approved" if report.approved else "candidate",
        "gate": report.gate.to_json() if report.gate else None,
        "seconds": report.seconds,
        "seed": fitted.options.seed,
        "event_weights": dict(fitted.options.weights),
        "half_life_days": choice.half_life_days,
        "data": {
            "events": len(log),
            "users": log.n_users,
            "items": log.n_items,
            "first_event": format_ts(datetime.fromtimestamp(log.ts_ms.min() / 1000, UTC)),
            "last_event": format_ts(datetime.fromtimestamp(log.ts_ms.max() / 1000, UTC)),
            "window_since": log.since.isoformat() if log.since else None,
            "source": fitted.options.source,
            "repeat_rates": {k: round(v, 4) for k, v in log.repeat_rates().items()},
        },
        "batch_users": {
            "served": report.users_served,
            "left_to_popular": report.users_left_to_popular,
        },
        "artifacts": artifacts,
        "report": f"{prefix}/report.md",
        "similar_items": {
            "recipe": fitted.similar.name,
            "category_fallbacks": report.related.replaced,
            "topped_up_from_category": report.related.topped_up,
            "min_events": MIN_EVENTS,
            "min_shared": MIN_SHARED,
        },
        "new_items": report.new_items.to_json(),
        "batch": [f"{batch}/{name}.jsonl" for name in fitted.batches],
        "libraries": _versions(),
    }
