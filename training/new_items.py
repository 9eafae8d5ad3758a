"""New items in a version: what serving needs to recommend items before they have events.

numpy only, like `training.published`, which loads it: the API's Lambda carries no scipy.

Training (`training.attributes`) turns each catalog item's attributes (category, brand, price
band, title words, other attributes) into one sparse vector whose groups are weighted by what
predicts which items the same shoppers touch; the version keeps the vectors of its items and
of the catalog's items that have no events yet ("cold" items, coded after the version's own).

- A young item (first listed, or first touched, less than `age_days` before the version's
  newest event) is scored for a user by how close its attributes are to the user's history:
  the history's attribute profile times the item's vector.
- An exploration `share` of each list goes to the user's best young items, at fixed
  positions (`explore_slots`), so that a list cut to any k keeps the same share.
- Related items of a cold item are the items nearest to it in attribute space.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from training.blend import position_in, row_positions, spread_rows, top_by_score

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


def explore_slots(k: int, share: float) -> list[int]:
    """The positions (from 0) of a k-long list that exploration takes: position p (from 1)
    is one where floor(p x share) steps up, so any first k of a longer list hold
    floor(k x share) of them (share 0.2: the 5th, 10th, 15th ...)."""
    slots = []
    for p in range(1, k + 1):
        if math.floor(p * share + 1e-9) > math.floor((p - 1) * share + 1e-9):
            slots.append(p - 1)
    return slots


def explore(
    ranked: list[tuple[int, float]], young: list[tuple[int, float]], k: int, share: float
) -> list[tuple[int, float]]:
    """A list of at most k, position by position: an exploration slot takes the best `young`
    pick not placed yet, any other position the next `ranked` item not placed yet (either
    falls back on the other when its own runs out). The first k positions depend only on
    the first entries of each, so a batch row cut to k and a realtime answer of k agree
    when `ranked` has k + slots entries and `young` slots + k."""
    slots = set(explore_slots(k, share))
    if not slots or not young:
        return ranked[:k]
    out: list[tuple[int, float]] = []
    placed: set[int] = set()
    at = {"ranked": 0, "young": 0}
    sources = {"ranked": ranked, "young": young}

    def take(name: str) -> tuple[int, float] | None:
        entries = sources[name]
        while at[name] < len(entries):
            entry = entries[at[name]]
            at[name] += 1
            if entry[0] not in placed:
                return entry
        return None

    for position in range(k):
        first, second = ("young", "ranked") if position in slots else ("ranked", "young")
        entry = take(first) or take(second)
        if entry is None:
            break
        out.append(entry)
        placed.add(entry[0])
    return out


@dataclass(frozen=True)
class Vectors:
    """A CSR matrix as its arrays: rows are items, columns attribute features."""

    indptr: Ints
    indices: Ints
    data: Floats
    n_columns: int

    @property
    def n_rows(self) -> int:
        """Rows (items)."""
        return len(self.indptr) - 1

    def spread(self, rows: Ints, weights: Floats) -> Floats:
        """Sum of the rows, each times its weight: a dense vector over the columns."""
        return spread_rows(self.indptr, self.indices, self.data, rows, weights, self.n_columns)

    def dot(self, rows: Ints, vector: Floats) -> Floats:
        """Each row's dot product with a dense vector over the columns."""
        positions, lengths = row_positions(self.indptr, rows)
        out = np.zeros(len(rows), np.float32)
        if not len(positions):
            return out
        products = self.data[positions] * vector[self.indices[positions]]
        owner = np.repeat(np.arange(len(rows)), lengths)
        return np.bincount(owner, weights=products, minlength=len(rows)).astype(np.float32)

    def arrays(self, prefix: str) -> dict[str, npt.NDArray[Any]]:
        """As `.npz` entries named `<prefix>_indptr` and so on."""
        return {
            f"{prefix}_indptr": self.indptr,
            f"{prefix}_indices": self.indices,
            f"{prefix}_data": self.data,
            f"{prefix}_shape": np.array([self.n_rows, self.n_columns], np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]], prefix: str) -> Vectors:
        """Back from `arrays`."""
        return cls(
            np.asarray(arrays[f"{prefix}_indptr"], np.int64),
            np.asarray(arrays[f"{prefix}_indices"], np.int64),
            np.asarray(arrays[f"{prefix}_data"], np.float32),
            int(arrays[f"{prefix}_shape"][1]),
        )

    def transposed(self) -> Vectors:
        """Columns as rows: which items hold each feature."""
        rows = np.repeat(np.arange(self.n_rows, dtype=np.int64), np.diff(self.indptr))
        order = np.lexsort((rows, self.indices))
        counts = np.bincount(self.indices, minlength=self.n_columns)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return Vectors(indptr, rows[order], self.data[order], self.n_rows)


@dataclass(frozen=True)
class NewItems:
    """A version's new-item part (`new-items.npz`): attribute vectors of its items (codes
    below `n_items`) and of cold items (codes from `n_items`), and which of them are young."""

    n_items: int
    cold_ids: npt.NDArray[np.str_]
    cold_categories: npt.NDArray[np.str_]
    vectors: Vectors
    #: Young items' codes, ascending.
    young: Ints
    share: float
    age_days: float

    @functools.cached_property
    def postings(self) -> Vectors:
        """Which items hold each attribute feature (for nearest items)."""
        return self.vectors.transposed()

    def cold_code(self, item_id: str) -> int | None:
        """A cold item's code (after the version's own items), if the catalog lists it."""
        position = position_in(self.cold_ids, item_id)
        return None if position is None else self.n_items + position

    def young_for(
        self,
        items: Ints,
        weights: Floats,
        n: int,
        *,
        skip: Collection[int] = (),
        allowed: npt.NDArray[np.bool_] | None = None,
    ) -> list[tuple[int, float]]:
        """The n young items whose attributes are nearest the weighted items', best first,
        ties by code; `allowed` is over every code (the version's items, then cold ones)."""
        if n <= 0 or not len(self.young) or not len(items):
            return []
        profile = self.vectors.spread(items, weights)
        scores = self.vectors.dot(self.young, profile)
        keep = scores > 0
        if skip:
            keep &= ~np.isin(self.young, np.fromiter(skip, np.int64, len(skip)))
        if allowed is not None:
            keep &= allowed[self.young]
        # young is ascending, so ties by position are ties by code
        best = top_by_score(np.where(keep, scores, 0), n)
        return [(int(self.young[i]), round(float(scores[i]), 6)) for i in best.tolist()]

    def nearest(self, code: int, k: int) -> list[tuple[int, float]]:
        """The k items (of any code but `code`) whose attributes are nearest the item's."""
        start, stop = self.vectors.indptr[code], self.vectors.indptr[code + 1]
        if start == stop:
            return []
        scores = self.postings.spread(
            self.vectors.indices[start:stop], self.vectors.data[start:stop]
        )
        scores[code] = 0
        return [(int(c), round(float(scores[c]), 6)) for c in top_by_score(scores, k).tolist()]

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """As `new-items.npz` holds it."""
        return {
            "n_items": np.array(self.n_items, np.int64),
            "cold_ids": self.cold_ids,
            "cold_categories": self.cold_categories,
            "young": self.young,
            "share": np.array(self.share, np.float64),
            "age_days": np.array(self.age_days, np.float64),
            **self.vectors.arrays("vectors"),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> NewItems:
        """Back from `new-items.npz`."""
        return cls(
            n_items=int(arrays["n_items"]),
            cold_ids=np.asarray(arrays["cold_ids"]).astype(str),
            cold_categories=np.asarray(arrays["cold_categories"]).astype(str),
            vectors=Vectors.from_arrays(arrays, "vectors"),
            young=np.asarray(arrays["young"], np.int64),
            share=float(arrays["share"]),
            age_days=float(arrays["age_days"]),
        )
