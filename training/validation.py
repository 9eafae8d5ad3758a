"""Validation folds: where tuning cuts the training data, and how it tells a gain from noise.

Two folds cut the training data on global time (at 80% and 90% of its events); a fold trains
on what came before its cut and scores what each user did after it. Where they score fewer
than `MIN_VALIDATION_USERS` users, a third fold holds out each user's newest events. On a
large shop the folds are drawn from a sample of users, each scoring at most `MAX_USERS`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from training.blend import History
from training.data import Interactions, Split, global_split, time_split, unseen_truth
from training.errors import NotEnoughData
from training.metrics import MIN_USERS, Paired, paired
from training.recipes import Recipe

#: Where the validation folds cut the training data, as shares of its events by time.
FOLDS: Final = (0.8, 0.9)
#: Users scored per fold.
MAX_USERS: Final = 2000
#: Above this many events, folds are drawn from a sample of users with about this many.
TUNING_EVENTS: Final = 2_000_000
#: Scored users, over the time-cut folds, below which a fold of each user's newest events is
#: added: fewer users than the gate needs to judge on is too few to choose on.
MIN_VALIDATION_USERS: Final = MIN_USERS


def fold_mean(users: np.ndarray) -> float:
    """A fold's metric from its per-user values, as `evaluate` gives it (0 with nobody to
    score)."""
    return float(users.mean()) if len(users) else 0.0


def beyond_noise(chosen: np.ndarray, default: np.ndarray) -> Paired:
    """The chosen option's per-user gain over the default's, paired, with its interval; a
    choice is kept only where `low > 0`."""
    return paired(np.asarray(chosen, np.float64), np.asarray(default, np.float64))


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
