"""One user's ALS factors from their history, the item factors fixed: the step serving folds new
events in with, and the one the ALS recipe checks itself against (`training.recipes`).

numpy only, as serving's model is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


def fold_in(
    gram: npt.NDArray[np.float64],
    item_factors: Floats,
    items: Ints,
    weights: npt.NDArray[np.floating[Any]],
    alpha: float,
) -> npt.NDArray[np.float64]:
    """A user's factors from their history, the item factors fixed: one step of ALS, as
    implicit's exact solver computes it. Confidence is alpha x weight (implicit scales the
    matrix by alpha; it does not add Hu et al.'s 1), and
    x = (Y'Y + reg I + Y'(C - I)Y)^-1 Y'C p, where `gram` is Y'Y + reg I (the same for
    every user, so computed once)."""
    confidence = alpha * np.asarray(weights, dtype=np.float64)
    yi = item_factors[items].astype(np.float64)
    system = gram + (yi.T * (confidence - 1.0)) @ yi
    return np.linalg.solve(system, (confidence[:, None] * yi).sum(axis=0))


def gram_matrix(item_factors: Floats, regularization: float) -> npt.NDArray[np.float64]:
    """Y'Y + reg I, in float64: the part of `fold_in` that does not depend on the user."""
    y = item_factors.astype(np.float64)
    return y.T @ y + regularization * np.eye(y.shape[1])
