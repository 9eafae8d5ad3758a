"""A published model version as serving holds it: plain numpy arrays, nothing heavier.

The API runs in a Lambda whose package must stay small, so this module reads the version's
`.npz` files itself and scores with numpy alone: no scipy, pandas, pyarrow or implicit (a
test checks the import graph). It mirrors the training recipes' scoring, and a parity test
holds it to them:

- neighbour models (item-kNN, EASE): a user's weighted history times each history item's
  top-N neighbours;
- ALS: the user's factors folded in from their history (one ALS step against the fixed item
  factors), times every item's factors;
- related items: the similar-items neighbours of the item, strongest first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ingestion.contract import epoch_ms
from ingestion.lake import Lake, read_json
from training.artifacts import MODELS, load_arrays

_DAY_MS: Final = 86_400_000

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class NeighbourTable:
    """A CSR item x item matrix as its three arrays."""

    indptr: Ints
    indices: Ints
    data: Floats

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> NeighbourTable:
        """From the `neighbours_*` arrays training writes."""
        return cls(
            indptr=np.asarray(arrays["neighbours_indptr"], dtype=np.int64),
            indices=np.asarray(arrays["neighbours_indices"], dtype=np.int64),
            data=np.asarray(arrays["neighbours_data"], dtype=np.float32),
        )

    def row(self, item: int) -> tuple[Ints, Floats]:
        """One item's neighbours and weights."""
        start, stop = self.indptr[item], self.indptr[item + 1]
        return self.indices[start:stop], self.data[start:stop]

    def spread(self, items: Ints, weights: Floats, n_items: int) -> Floats:
        """Sum of each item's neighbour row, times the item's weight."""
        starts, stops = self.indptr[items], self.indptr[items + 1]
        lengths = stops - starts
        if not lengths.sum():
            return np.zeros(n_items, dtype=np.float32)
        positions = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
        scale = np.repeat(weights, lengths)
        return np.bincount(
            self.indices[positions], weights=self.data[positions] * scale, minlength=n_items
        ).astype(np.float32)


@dataclass(frozen=True)
class ServingModel:
    """Everything one version needs to answer, loaded once."""

    version: str
    recipe: str
    params: Mapping[str, Any]
    item_ids: npt.NDArray[np.str_]
    categories: npt.NDArray[np.str_]
    popularity: Floats
    trending: Floats
    weights: Mapping[str, float]
    half_life_days: float | None
    similar: NeighbourTable
    #: The newest event the version was trained on: a user with a later one has news.
    last_event_ms: int = 0
    created_at: str = ""
    neighbours: NeighbourTable | None = None
    item_factors: Floats | None = None

    @property
    def n_items(self) -> int:
        """Items the version knows."""
        return len(self.item_ids)

    @classmethod
    def load(cls, lake: Lake, version: str) -> ServingModel:
        """Read a version's manifest and arrays from the lake."""
        prefix = f"{MODELS}/{version}"
        manifest: dict[str, Any] = read_json(lake, f"{prefix}/manifest.json")
        chosen = manifest["chosen"]
        ids = load_arrays(lake, f"{prefix}/ids.npz")
        personal = load_arrays(lake, f"{prefix}/user-personalization.npz")
        return cls(
            version=version,
            recipe=chosen,
            params=manifest["params"][chosen],
            item_ids=ids["item_ids"].astype(str),
            categories=ids["item_categories"].astype(str),
            popularity=np.asarray(
                load_arrays(lake, f"{prefix}/popularity-count.npz")["popularity"], np.float32
            ),
            trending=np.asarray(
                load_arrays(lake, f"{prefix}/trending.npz")["popularity"], np.float32
            ),
            weights=manifest["event_weights"],
            last_event_ms=epoch_ms(datetime.fromisoformat(manifest["data"]["last_event"])),
            created_at=manifest["created_at"],
            half_life_days=manifest.get("half_life_days"),
            similar=NeighbourTable.from_arrays(load_arrays(lake, f"{prefix}/similar-items.npz")),
            neighbours=(
                NeighbourTable.from_arrays(personal) if "neighbours_indptr" in personal else None
            ),
            item_factors=(
                np.asarray(personal["item_factors"], np.float32)
                if "item_factors" in personal
                else None
            ),
        )

    def item_code(self, item_id: str) -> int | None:
        """The version's code for an item id, if it knows the item."""
        position = int(np.searchsorted(self.item_ids, item_id))
        if position < self.n_items and self.item_ids[position] == item_id:
            return position
        return None

    def history_row(
        self, events: Iterable[tuple[str, str, int]], now_ms: int
    ) -> tuple[Ints, Floats]:
        """A user's (item, event type, ts) events as item codes and summed weights."""
        totals: dict[int, float] = {}
        for item_id, event_type, ts_ms in events:
            code = self.item_code(item_id)
            weight = float(self.weights.get(event_type, 0.0))
            if code is None or weight <= 0:
                continue
            if self.half_life_days:
                weight *= math.exp2(-max(0, now_ms - ts_ms) / _DAY_MS / self.half_life_days)
            totals[code] = totals.get(code, 0.0) + weight
        items = np.array(sorted(totals), dtype=np.int64)
        return items, np.array([totals[i] for i in items.tolist()], dtype=np.float32)

    def personal_scores(self, items: Ints, weights: Floats) -> Floats | None:
        """Scores over every item for a history; None for an empty one."""
        if not len(items):
            return None
        if self.neighbours is not None:
            return self.neighbours.spread(items, weights, self.n_items)
        if self.item_factors is None:
            return None
        y = self.item_factors.astype(np.float64)
        confidence = float(self.params["alpha"]) * weights.astype(np.float64)
        yi = y[items]
        system = y.T @ y + float(self.params["regularization"]) * np.eye(y.shape[1])
        system += (yi.T * confidence) @ yi
        user = np.linalg.solve(system, ((1.0 + confidence)[:, None] * yi).sum(axis=0))
        return (self.item_factors @ user.astype(np.float32)).astype(np.float32)

    def top(
        self,
        scores: Floats,
        k: int,
        exclude: Sequence[int] = (),
        category: str | None = None,
        only_scored: bool = False,
    ) -> list[tuple[str, float]]:
        """The k best items by score, leaving out some and keeping to a category."""
        scores = scores.astype(np.float32, copy=True)
        if only_scored:
            scores[scores == 0] = -np.inf
        if len(exclude):
            scores[np.asarray(exclude, dtype=np.int64)] = -np.inf
        if category is not None:
            scores[self.categories != category] = -np.inf
        k = min(k, self.n_items)
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [
            (str(self.item_ids[i]), round(float(scores[i]), 6))
            for i in best.tolist()
            if np.isfinite(scores[i])
        ]

    def related(self, item_id: str, k: int) -> list[tuple[str, float]] | None:
        """The item's strongest similar items; None if the version does not know it."""
        code = self.item_code(item_id)
        if code is None:
            return None
        neighbours, weights = self.similar.row(code)
        order = np.argsort(-weights, kind="stable")[:k]
        return [
            (str(self.item_ids[neighbours[i]]), round(float(weights[i]), 6))
            for i in order.tolist()
            if neighbours[i] != code
        ]
