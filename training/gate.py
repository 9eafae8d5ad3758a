"""The promotion gate: a new model goes live only if it beats, on the same holdout, both the
model in production and popularity.

The production model is whatever `recs publish` last published (`models/production.json`,
written by serving). It is loaded from its own artifacts and scored on the new model's
holdout: its users and items are matched to the new ones by id, and users it never saw are
folded in from their history, so both models answer the same question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ingestion.lake import Lake, damaged, read_json
from training.artifacts import MODELS, PRODUCTION, load_arrays
from training.data import Interactions, Split
from training.errors import ModelNotFound
from training.metrics import evaluate
from training.recipes import RECIPES, Recipe


def production_version(lake: Lake) -> str | None:
    """The version `recs publish` last made live, if any."""
    try:
        production = read_json(lake, PRODUCTION)
    except FileNotFoundError:
        return None
    if not isinstance(production, dict) or not isinstance(production.get("version"), str):
        raise damaged(lake, PRODUCTION, "it names no version")
    return str(production["version"])


def load_model(lake: Lake, version: str) -> tuple[Recipe, npt.NDArray[np.str_], dict[str, Any]]:
    """A version's user-personalization model, its item ids and its manifest."""
    prefix = f"{MODELS}/{version}"
    try:
        manifest: dict[str, Any] = read_json(lake, f"{prefix}/manifest.json")
    except FileNotFoundError:
        raise ModelNotFound(
            f"no model version {version} under {MODELS}/ (a version is complete once its "
            "manifest.json is written); run `recs train`"
        ) from None
    chosen = manifest["chosen"]
    model = RECIPES[chosen].from_arrays(
        load_arrays(lake, f"{prefix}/user-personalization.npz"), manifest["params"][chosen]
    )
    item_ids = load_arrays(lake, f"{prefix}/ids.npz")["item_ids"].astype(str)
    return model, item_ids, manifest


def newer_split(log: Interactions, split: Split, after_ms: int) -> Split | None:
    """The split with only held-out events newer than `after_ms` as truth, or None if none.

    The production model trained on everything up to its own last event; held-out events
    it already saw would flatter it. Comparing on newer events only is fair to both.
    """
    held = ~split.train & (log.ts_ms > after_ms)
    if not held.any():
        return None
    row_of = np.full(log.n_users, -1, dtype=np.int64)
    row_of[split.test_users] = np.arange(split.n_test)
    truth = sp.csr_matrix(
        (np.ones(int(held.sum()), dtype=np.float32), (row_of[log.user[held]], log.item[held])),
        shape=split.truth.shape,
    )
    truth.sum_duplicates()
    truth.data[:] = 1.0
    return Split(train=split.train, test_users=split.test_users, truth=truth)


def score_other(
    model: Recipe,
    model_items: npt.NDArray[np.str_],
    log: Interactions,
    rows: sp.csr_matrix,
    split: Split,
    k: int,
) -> dict[str, float]:
    """Metrics of a model trained on other codes, on this split: items matched by id."""
    to_old = np.searchsorted(model_items, log.item_ids)
    to_old = np.minimum(to_old, len(model_items) - 1)
    known = model_items[to_old] == log.item_ids
    coo = rows.tocoo()
    keep = known[coo.col]
    old_rows = sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], to_old[coo.col[keep]])),
        shape=(rows.shape[0], len(model_items)),
    )
    best, _ = model.recommend(None, old_rows, k)
    to_new = np.searchsorted(log.item_ids, model_items)
    to_new = np.minimum(to_new, len(log.item_ids) - 1)
    mapped = np.where(log.item_ids[to_new] == model_items, to_new, -1)
    recommended = np.where(best >= 0, mapped[np.maximum(best, 0)], -1)
    return evaluate(recommended, split.truth)


@dataclass
class GateResult:
    """Whether a model may be published, and why (or why not)."""

    passed: bool
    metric: str
    candidate: float
    popularity: float
    production_version: str | None = None
    production: dict[str, float] | None = None
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The manifest's `gate` entry."""
        return {
            "passed": self.passed,
            "metric": self.metric,
            "candidate": self.candidate,
            "popularity": self.popularity,
            "production_version": self.production_version,
            "production_metrics": self.production,
            "reasons": self.reasons,
        }


def decide(
    metric: str,
    candidate: dict[str, float],
    popularity: dict[str, float],
    production: dict[str, float] | None,
    production_version: str | None,
    no_production_reason: str = "no model is in production yet",
) -> GateResult:
    """Pass only a model strictly better than popularity and than production, if any."""
    result = GateResult(
        passed=True,
        metric=metric,
        candidate=candidate[metric],
        popularity=popularity[metric],
        production_version=production_version,
        production=production,
    )
    if candidate[metric] <= popularity[metric]:
        result.passed = False
        result.reasons.append(
            f"{metric} {candidate[metric]:.4f} does not beat popularity-count's "
            f"{popularity[metric]:.4f}"
        )
    if production is not None and candidate[metric] <= production[metric]:
        result.passed = False
        result.reasons.append(
            f"{metric} {candidate[metric]:.4f} does not beat production {production_version}'s "
            f"{production[metric]:.4f} on the same holdout"
        )
    if result.passed:
        result.reasons.append(
            f"{metric} {candidate[metric]:.4f} beats popularity-count ({popularity[metric]:.4f})"
            + (
                f" and production {production_version} ({production[metric]:.4f})"
                if production is not None
                else f"; {no_production_reason}"
            )
        )
    return result
