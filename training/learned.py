"""Training the learned second stage (`training.ranker`) on the validation folds.

The folds tuning already cut (inside the events the gate trains on) are the label windows:
each fold's candidates, from the chosen blend as fitted on that fold, are labelled with what
each user touched after its cut. The model trains on every fold but the newest and is judged
on the newest against the blend alone, user by user; it is kept only where its gain stands
clear of the noise (`validation.beyond_noise`), and is then trained again on every fold.

LightGBM's lambdarank (the `lightgbm` library, the reference implementation of LambdaMART)
optimises NDCG directly. Its settings are its documented defaults, but for a floor on leaf
size (a shop's few thousand users otherwise overfit) and no missing-value handling (no
feature is ever missing, and the numpy evaluator serving uses assumes so).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from training.ranker import Trees
from training.scoring import Entries

Ints = npt.NDArray[np.int64]
#: Boosting rounds (LightGBM's default).
ROUNDS: Final = 100
PARAMS: Final[dict[str, Any]] = {
    "objective": "lambdarank",
    "learning_rate": 0.05,
    "num_leaves": 31,
    # Six levels at most: serving's numpy evaluator steps down one level at a time.
    "max_depth": 6,
    "min_data_in_leaf": 50,
    "lambdarank_truncation_level": 20,
    "use_missing": False,
    "deterministic": True,
    "force_row_wise": True,
    # One thread: the folds are a few hundred thousand rows, where a second thread costs
    # more in contention than it saves (4 times slower on a busy 2-core machine).
    "num_threads": 1,
    "seed": 1,
    "verbose": -1,
}


def labelled(found: Entries, truth: sp.csr_matrix) -> tuple[Ints, Ints]:
    """Each entry's label (1: the row's user touched the item after the cut) and each row's
    number of entries (LightGBM's query groups), rows without entries left out."""
    labels = (np.asarray(truth[found.row, found.item]).ravel() > 0).astype(np.int64)
    sizes = np.bincount(found.row, minlength=truth.shape[0])
    return labels, sizes[sizes > 0].astype(np.int64)


def fit(folds: list[tuple[Entries, sp.csr_matrix]], rounds: int = ROUNDS) -> Trees | None:
    """A lambdarank ensemble on each fold's entries and truth; None where nothing is a hit."""
    import lightgbm

    found = [(e, *labelled(e, truth)) for e, truth in folds if len(e.row)]
    if not any(labels.any() for _, labels, _ in found):
        return None
    data = lightgbm.Dataset(
        np.vstack([e.features for e, _, _ in found]),
        np.concatenate([labels for _, labels, _ in found]),
        group=np.concatenate([groups for _, _, groups in found]),
        params={"verbose": -1},
    )
    booster = lightgbm.train(dict(PARAMS), data, num_boost_round=rounds)
    return Trees.from_dump(booster.dump_model(), booster.model_to_string())
