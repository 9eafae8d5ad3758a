"""Recipes, named after Amazon Personalize's, with one model API in the style of implicit's.

- popularity-count and trending: the baselines, and the fallback for cold users.
- item-kNN: co-occurrence with a popularity correction (asymmetric cosine), top-N per item.
- EASE: the closed-form linear autoencoder, pruned to top-N per item; only while the item
  count keeps the dense inverse affordable.
- ALS: `implicit`'s alternating least squares.

Every model answers `recommend(users, rows, k, exclude)` (users are training codes, rows are
their interaction rows), `similar_items(items, k)`, and saves to `.npz` arrays, no pickle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from training.als_step import fold_in, gram_matrix
from training.errors import ModelDiverged, NotEnoughData

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
_BATCH: Final = 1024


def top_k(scores: Floats, k: int) -> tuple[Ints, Floats]:
    """The k best columns of each row, best first; -1 and -inf where a row has fewer."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    chosen = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-chosen, axis=1, kind="stable")
    items = np.take_along_axis(part, order, axis=1).astype(np.int64)
    best = np.take_along_axis(chosen, order, axis=1)
    items[~np.isfinite(best)] = -1
    return items, best.astype(np.float32)


def sparse_top_k(matrix: sp.csr_matrix, k: int) -> tuple[Ints, Floats]:
    """`top_k` over the stored entries of each row only: no dense row of the whole catalog.

    Entries are ranked in float32 (as the realtime path ranks them), ties by column. Rows
    with fewer than k entries are padded with -1, so an item nothing points to is never
    recommended by accident. One sort of a 64-bit key (row, then the score's bits, largest
    first) rather than a lexsort of two keys: about three times faster on a block of users.
    """
    matrix = matrix.tocsr()
    if not matrix.has_sorted_indices:
        matrix = matrix.sorted_indices()  # a stable sort then breaks ties by column
    n = matrix.shape[0]
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(n, dtype=np.uint64), counts)
    data = np.ascontiguousarray(matrix.data, dtype=np.float32)
    bits = data.view(np.uint32)
    # IEEE floats sort as integers once negative ones have every bit flipped and positive
    # ones their sign bit set; flipping all of them again puts the largest first.
    ascending = np.where(bits >> np.uint32(31) == 1, ~bits, bits | np.uint32(0x80000000))
    key = (rows << np.uint64(32)) | (~ascending).astype(np.uint64)
    order = np.argsort(key, kind="stable")
    rank = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], counts)
    keep = rank < k
    chosen = order[keep]
    at = rows[chosen].astype(np.int64)
    items = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    items[at, rank[keep]] = matrix.indices[chosen]
    scores[at, rank[keep]] = data[chosen]
    return items, scores


def _in_batches(
    n: int, k: int, rank: Callable[[slice], tuple[Ints, Floats]]
) -> tuple[Ints, Floats]:
    """Run `rank` over rows [0, n) a batch at a time and stack the results."""
    found = [rank(slice(start, start + _BATCH)) for start in range(0, n, _BATCH)]
    if not found:
        return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
    return np.vstack([f[0] for f in found]), np.vstack([f[1] for f in found])


def _check_finite(name: str, values: npt.NDArray[Any]) -> None:
    if not np.isfinite(values).all():
        raise ModelDiverged(f"{name} produced NaN or infinite values; check its parameters")


class Recipe(ABC):
    """A trained model over item codes 0..n_items-1."""

    name: ClassVar[str]
    n_items: int

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def fit(self, matrix: sp.csr_matrix) -> Recipe:
        """Train on users x items weights."""

    @abstractmethod
    def scores(self, users: Ints | None, rows: sp.csr_matrix) -> Floats:
        """Dense scores, one row per user, from their interaction rows (and, where the model
        knows them, their training codes; None scores every row as a user it never saw)."""

    @abstractmethod
    def similar_items(self, items: Ints, k: int) -> tuple[Ints, Floats]:
        """The k items most like each item, itself left out (one dense row per item)."""

    def related(self, items: Ints, k: int) -> tuple[Ints, Floats]:
        """`similar_items` for any number of items, a batch at a time, so memory stays flat."""
        return _in_batches(len(items), k, lambda part: self.similar_items(items[part], k))

    @abstractmethod
    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """What `save` writes: plain arrays, loadable with allow_pickle=False."""

    @classmethod
    @abstractmethod
    def from_arrays(
        cls, arrays: Mapping[str, npt.NDArray[Any]], params: Mapping[str, Any]
    ) -> Recipe:
        """A trained model back from what `arrays` wrote and its parameters."""

    def recommend(
        self,
        users: Ints | None,
        rows: sp.csr_matrix,
        k: int,
        exclude: sp.csr_matrix | None = None,
    ) -> tuple[Ints, Floats]:
        """Top k items per user (`users` codes, or None for rows the model never saw), none
        of `exclude`'s, a batch of rows at a time so memory stays at one batch."""
        return _in_batches(
            rows.shape[0],
            k,
            lambda part: self._rank(
                None if users is None else users[part],
                rows[part],
                k,
                None if exclude is None else exclude[part],
            ),
        )

    def _rank(
        self, users: Ints | None, rows: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None
    ) -> tuple[Ints, Floats]:
        """One batch of `recommend`: dense scores, the excluded at -inf, the top k."""
        batch = np.array(self.scores(users, rows), dtype=np.float32)
        if exclude is not None:
            block = exclude.tocoo()
            batch[block.row, block.col] = -np.inf
        return top_k(batch, k)


class Popularity(Recipe):
    """popularity-count: the most interacted-with items, the same for everyone."""

    name = "popularity-count"

    def fit(self, matrix: sp.csr_matrix) -> Popularity:
        """Sum each item's weights."""
        self.n_items = matrix.shape[1]
        self.popularity = np.asarray(matrix.sum(axis=0)).ravel().astype(np.float32)
        _check_finite(self.name, self.popularity)
        if not self.popularity.any():
            raise NotEnoughData(f"{self.name}: no interactions to count")
        return self

    def scores(self, users: Ints | None, rows: sp.csr_matrix) -> Floats:
        """Every user gets the popularity vector."""
        return np.broadcast_to(self.popularity, (rows.shape[0], self.n_items))

    def similar_items(self, items: Ints, k: int) -> tuple[Ints, Floats]:
        """Popular items, minus the item itself."""
        scores = np.repeat(self.popularity[None, :], len(items), axis=0)
        scores[np.arange(len(items)), items] = -np.inf
        return top_k(scores, k)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The popularity vector."""
        return {"popularity": self.popularity}

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, npt.NDArray[Any]], params: Mapping[str, Any]
    ) -> Popularity:
        """Back from its popularity vector."""
        model = cls(**params)
        model.popularity = np.asarray(arrays["popularity"], dtype=np.float32)
        model.n_items = len(model.popularity)
        return model


class Trending(Popularity):
    """trending: popularity with each event's weight halved every `half_life_days`.

    Fit it on a matrix built with `Interactions.matrix(half_life_days=...)`; the decay is in the
    weights, so the model itself is a popularity vector.
    """

    name = "trending"


class NeighbourRecipe(Recipe):
    """A model that scores by a sparse item x item matrix of top-N neighbours."""

    neighbours: sp.csr_matrix

    def scores(self, users: Ints | None, rows: sp.csr_matrix) -> Floats:
        """A user's weights times each item's neighbour weights."""
        return np.asarray((rows @ self.neighbours).todense(), dtype=np.float32)

    def similar_items(self, items: Ints, k: int) -> tuple[Ints, Floats]:
        """The strongest positive neighbours of each item (never the item itself)."""
        rows = self.neighbours[items].tocsr()
        rows.data[rows.data < 0] = 0.0
        rows.eliminate_zeros()
        return sparse_top_k(rows, k)

    def _rank(
        self, users: Ints | None, rows: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None
    ) -> tuple[Ints, Floats]:
        """Top k from the sparse product of history and neighbours."""
        product = (rows @ self.neighbours).tocsr()
        if exclude is not None:
            product = product - product.multiply(exclude != 0)
            product.eliminate_zeros()
        return sparse_top_k(product, k)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The neighbour matrix as CSR arrays."""
        n = self.neighbours
        return {
            "neighbours_data": n.data,
            "neighbours_indices": n.indices,
            "neighbours_indptr": n.indptr,
            "neighbours_shape": np.array(n.shape, dtype=np.int64),
        }

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, npt.NDArray[Any]], params: Mapping[str, Any]
    ) -> NeighbourRecipe:
        """Back from its CSR arrays."""
        model = cls(**params)
        shape = tuple(int(v) for v in arrays["neighbours_shape"])
        model.neighbours = sp.csr_matrix(
            (arrays["neighbours_data"], arrays["neighbours_indices"], arrays["neighbours_indptr"]),
            shape=shape,
        )
        model.n_items = shape[1]
        return model

    def _keep_top(self, block: Any, offset: int, *, signed: bool = False) -> sp.csr_matrix:
        """Prune rows `offset..` of an item x item matrix to their top-N positive weights, or
        with `signed` to their N largest in magnitude, negative ones included (EASE's
        negative weights carry as much of its accuracy as its positive ones)."""
        dense = np.asarray(block.toarray() if sp.issparse(block) else block, dtype=np.float32)
        rows = np.arange(dense.shape[0])
        dense[rows, rows + offset] = 0.0  # an item is not its own neighbour
        n = min(int(self.params["neighbours"]), dense.shape[1])
        part = np.argpartition(-(np.abs(dense) if signed else dense), n - 1, axis=1)[:, :n]
        values = np.take_along_axis(dense, part, axis=1)
        keep = values != 0 if signed else values > 0
        return sp.csr_matrix(
            (values[keep], (np.repeat(rows, n).reshape(-1, n)[keep], part[keep])),
            shape=dense.shape,
            dtype=np.float32,
        )


class ItemKNN(NeighbourRecipe):
    """item-kNN over co-occurrence, divided by popularity^alpha x popularity^(1-alpha).

    alpha 0.5 is cosine; higher alpha favours popular neighbours less. The co-occurrences and
    each item's top N are computed by `implicit`'s `all_pairs_knn` (C++, one heap of N per
    item, on every core), so no item x item matrix is ever held whole.
    """

    name = "item-knn"

    def __init__(self, neighbours: int = 100, alpha: float = 0.5) -> None:
        super().__init__(neighbours=neighbours, alpha=alpha)

    def fit(self, matrix: sp.csr_matrix) -> ItemKNN:
        """Binary co-occurrence of items in users' histories, normalised and pruned.

        all_pairs_knn ranks the dot products of item columns. Scaling column j by
        c_j^-(1-alpha) ranks each row i by co_ij / c_j^(1-alpha), the same order as the
        asymmetric cosine co_ij / (c_i^alpha c_j^(1-alpha)); multiplying row i by
        c_i^(1-2 alpha) then gives the cosine's own values.
        """
        from implicit._nearest_neighbours import all_pairs_knn

        self.n_items = matrix.shape[1]
        seen = matrix.tocsr().astype(np.float64)
        seen.data[:] = 1.0
        counts = np.asarray(seen.sum(axis=0)).ravel() + 1e-9
        alpha = float(self.params["alpha"])
        scaled = (seen @ sp.diags(counts ** -(1.0 - alpha))).tocsr()
        n = int(self.params["neighbours"])
        # One more than wanted: an item is its own nearest neighbour, and is dropped.
        near = all_pairs_knn(scaled, n + 1, show_progress=False).tocsr()
        near.setdiag(0.0)
        near.eliminate_zeros()
        near = (sp.diags(counts ** (1.0 - 2.0 * alpha)) @ near).tocsr()
        self.neighbours = _prune_rows(near, n).astype(np.float32)
        _check_finite(self.name, self.neighbours.data)
        return self

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, npt.NDArray[Any]], params: Mapping[str, Any]
    ) -> NeighbourRecipe:
        """Back from its CSR arrays (versions trained before 2026-11-25 carry a `block`
        parameter, which no longer means anything)."""
        return super().from_arrays(arrays, {k: v for k, v in params.items() if k != "block"})


def _prune_rows(matrix: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Each row's n largest entries (an item whose own entry was not in its top N + 1 has
    one neighbour too many)."""
    counts = np.diff(matrix.indptr)
    if counts.size == 0 or counts.max() <= n:
        return matrix
    items, scores = sparse_top_k(matrix, n)
    keep = items >= 0
    rows = np.repeat(np.arange(matrix.shape[0]), n).reshape(-1, n)
    return sp.csr_matrix((scores[keep], (rows[keep], items[keep])), shape=matrix.shape)


class EASE(NeighbourRecipe):
    """EASE (Steck, 2019): B = -P / diag(P) with P = (X'X + lambda I)^-1, then the top-N
    weights of each item by magnitude."""

    name = "ease"
    MAX_ITEMS: ClassVar[int] = 6000

    def __init__(self, l2: float = 200.0, neighbours: int = 200) -> None:
        super().__init__(l2=l2, neighbours=neighbours)

    def fit(self, matrix: sp.csr_matrix) -> EASE:
        """The closed form, in float64 for a stable inverse."""
        self.n_items = matrix.shape[1]
        if self.n_items > self.MAX_ITEMS:
            raise NotEnoughData(
                f"EASE needs a dense {self.n_items} x {self.n_items} inverse; it is kept to "
                f"{self.MAX_ITEMS} items"
            )
        gram = np.asarray((matrix.T @ matrix).todense(), dtype=np.float64)
        gram[np.diag_indices_from(gram)] += float(self.params["l2"])
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)
        np.fill_diagonal(weights, 0.0)
        _check_finite(self.name, weights)
        self.neighbours = self._keep_top(weights.astype(np.float32), 0, signed=True)
        return self


class ALS(Recipe):
    """Alternating least squares from the `implicit` library, seeded."""

    name = "als"

    # Defaults tuned on a generated shop (seed 77) other than the benchmark's; 128 factors
    # beat 64 by about 6% NDCG@10 there, alpha 4 beat 1 and 10.
    def __init__(
        self,
        factors: int = 128,
        regularization: float = 0.05,
        alpha: float = 4.0,
        iterations: int = 15,
        seed: int = 42,
    ) -> None:
        super().__init__(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            seed=seed,
        )

    def fit(self, matrix: sp.csr_matrix) -> ALS:
        """Fit implicit's ALS on the weights (single-threaded BLAS, as implicit advises)."""
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        self.n_items = matrix.shape[1]
        # implicit checks the BLAS thread pool when the model is made: limit it first.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=int(self.params["factors"]),
                regularization=float(self.params["regularization"]),
                alpha=float(self.params["alpha"]),
                iterations=int(self.params["iterations"]),
                random_state=int(self.params["seed"]),
            )
            model.fit(matrix, show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        _check_finite(self.name, self.item_factors)
        _check_finite(self.name, self.user_factors)
        return self

    def scores(self, users: Ints | None, rows: sp.csr_matrix) -> Floats:
        """Dot products of the users' factors with every item's; unknown users folded in."""
        factors = self.user_factors[users] if users is not None else self.fold_in(rows)
        return factors @ self.item_factors.T

    def _rank(
        self, users: Ints | None, rows: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None
    ) -> tuple[Ints, Floats]:
        """implicit's multi-threaded dot-product top-k: about ten times numpy's speed here."""
        from implicit.cpu.topk import topk

        factors = self.user_factors[users] if users is not None else self.fold_in(rows)
        filtered = None if exclude is None else exclude.tocsr().astype(np.float32)
        ids, scores = topk(
            self.item_factors,
            np.ascontiguousarray(factors),
            min(k, self.n_items),
            filter_query_items=filtered,
        )
        ids = np.asarray(ids, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        ids[~np.isfinite(scores)] = -1
        return ids, scores

    def fold_in(self, rows: sp.csr_matrix) -> Floats:
        """User factors for interaction rows the model never saw, with the item factors fixed.

        One step of ALS for each row, as implicit computes it (`training.published.fold_in`):
        confidence alpha x weight (implicit scales the matrix by alpha and does not add Hu et
        al.'s 1), x = (Y'Y + Y'(C - I)Y + reg I)^-1 Y'C p.
        """
        gram = gram_matrix(self.item_factors, float(self.params["regularization"]))
        rows = rows.tocsr()
        out = np.zeros((rows.shape[0], self.item_factors.shape[1]), dtype=np.float32)
        for i in range(rows.shape[0]):
            part = slice(rows.indptr[i], rows.indptr[i + 1])
            if part.start == part.stop:
                continue
            out[i] = fold_in(
                gram,
                self.item_factors,
                rows.indices[part].astype(np.int64),
                rows.data[part],
                float(self.params["alpha"]),
            )
        return out

    def similar_items(self, items: Ints, k: int) -> tuple[Ints, Floats]:
        """Cosine similarity of item factors."""
        norms = np.linalg.norm(self.item_factors, axis=1) + 1e-9
        unit = self.item_factors / norms[:, None]
        scores = unit[items] @ unit.T
        scores[np.arange(len(items)), items] = -np.inf
        return top_k(scores, k)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Both factor matrices."""
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]], params: Mapping[str, Any]) -> ALS:
        """Back from both factor matrices."""
        model = cls(**params)
        model.user_factors = np.asarray(arrays["user_factors"], dtype=np.float32)
        model.item_factors = np.asarray(arrays["item_factors"], dtype=np.float32)
        model.n_items = len(model.item_factors)
        return model


RECIPES: Final[dict[str, type[Recipe]]] = {
    cls.name: cls for cls in (Popularity, Trending, ItemKNN, EASE, ALS)
}
