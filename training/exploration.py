"""New items in `recs train`: the exploration share chosen on the holdout, and the version's
new-item part fitted on every event (`training.attributes` fits, `training.new_items` serves).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np
import numpy.typing as npt

from common.progress import Progress
from training.attributes import (
    SHARES,
    Catalog,
    NewItemsReport,
    choose_share,
    explored_rows,
    fit_new_items,
)
from training.blend import History
from training.data import Interactions, Split
from training.new_items import NewItems

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float32]


class ExplorationOptions(Protocol):
    """What `recs train`'s options say about exploration."""

    @property
    def exploration(self) -> float | str: ...
    @property
    def exploration_age_days(self) -> float: ...
    @property
    def seed(self) -> int: ...


class Chosen(Protocol):
    """What tuning chose that exploration reads."""

    @property
    def half_life_days(self) -> float | None: ...


def first_events(log: Interactions, mask: npt.NDArray[np.bool_] | None = None) -> Ints:
    """Each item's first event (ms) within `mask`, -1 for none."""
    inside = np.ones(len(log), bool) if mask is None else mask
    first = np.full(log.n_items, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, log.item[inside], log.ts_ms[inside])
    return np.where(first == np.iinfo(np.int64).max, -1, first)


def histories(history: History, users: Ints) -> list[tuple[Ints, Floats]]:
    """Each user's items and decayed weights."""
    entries = (history.user(int(u)) for u in users.tolist())
    return [(e.items, e.weights) for e in entries]


def explore_holdout(
    catalog: Catalog,
    log: Interactions,
    weights: Mapping[str, float],
    choice: Chosen,
    split: Split,
    served: Ints,
    options: ExplorationOptions,
    progress: Progress,
) -> NewItemsReport:
    """Fit the new-item part on the events before the holdout's cut, give a share of each
    held-out user's served list to their young items, and choose the share (or keep the one
    asked for): the gain in NDCG@10 per share, with its interval, goes in the manifest."""
    report = NewItemsReport()
    if not len(catalog):
        report.chosen_on = "no catalog: items are recommended once they have events"
        progress(f"  new items: {report.chosen_on}")
        return report
    cut = int(split.cut_ms if split.cut_ms is not None else log.ts_ms[split.train].max())
    new_items, report.weights = fit_new_items(
        catalog,
        log.item_ids,
        first_events(log, split.train),
        log.touched(split.train),
        cut,
        0.0,
        age_days=options.exploration_age_days,
        seed=options.seed,
    )
    history = log.history(dict(weights), split.train, choice.half_life_days)
    share, report.evidence = choose_share(
        new_items, served, histories(history, split.test_users.astype(np.int64)), split.truth
    )
    learned = ", ".join(f"{g} {w:.2f}" for g, w in report.weights.items())
    progress(f"  new items: attribute weights learned on items with events: {learned}")
    for name, gain in report.evidence.items():
        progress(
            f"    exploration share {name}: NDCG@10 {gain['difference']:+.4f} "
            f"(95% interval {gain['low']:+.4f} to {gain['high']:+.4f}) over none"
        )
    if isinstance(options.exploration, str):
        report.share = share
        report.chosen_on = (
            f"the holdout: share {share:g} gains beyond noise"
            if share
            else f"the holdout: no share of {', '.join(f'{s:g}' for s in SHARES)} gains "
            "beyond noise, so lists are not explored"
        )
    else:
        report.share = float(options.exploration)
        report.chosen_on = "asked for (--exploration)"
    progress(f"  exploration share {report.share:g}, chosen on {report.chosen_on}")
    return report


def refit_new_items(
    catalog: Catalog,
    log: Interactions,
    report: NewItemsReport,
    options: ExplorationOptions,
) -> NewItems:
    """The version's new-item part, fitted on every event, with the chosen share."""
    newest = int(log.ts_ms.max())
    new_items, report.weights = fit_new_items(
        catalog,
        log.item_ids,
        first_events(log),
        log.touched(),
        newest,
        report.share,
        age_days=options.exploration_age_days,
        seed=options.seed,
    )
    report.young, report.cold = len(new_items.young), len(new_items.cold_ids)
    return new_items


def explored_batches(
    new_items: NewItems,
    history: History,
    users: Ints,
    user_best: Ints,
    user_scores: Floats,
    item_best: Ints,
    item_scores: Floats,
) -> tuple[Ints, Floats, Ints, Floats]:
    """The batch's user and item lists with their exploration slots filled, and a related
    list for each cold item (its nearest items by attributes) after the items' own."""
    share = new_items.share
    if share > 0 and len(new_items.young):
        user_best, user_scores = explored_rows(
            new_items, user_best, user_scores, histories(history, users), share
        )
        one = np.ones(1, np.float32)
        items = [(np.array([i], np.int64), one) for i in range(len(item_best))]
        item_best, item_scores = explored_rows(new_items, item_best, item_scores, items, share)
    k = item_best.shape[1]
    cold_best = np.full((len(new_items.cold_ids), k), -1, np.int64)
    cold_scores = np.zeros((len(new_items.cold_ids), k), np.float32)
    for n in range(len(new_items.cold_ids)):
        found = new_items.nearest(new_items.n_items + n, k)
        cold_best[n, : len(found)] = [c for c, _ in found]
        cold_scores[n, : len(found)] = [s for _, s in found]
    return (
        user_best,
        user_scores,
        np.vstack([item_best, cold_best]),
        np.vstack([item_scores, cold_scores]),
    )
