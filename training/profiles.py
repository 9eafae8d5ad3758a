"""A user's trained history as a row of the online store, for an API that loads a version
without its users' histories (RECS_MODEL_USERS=store; `training.published`).

numpy only, as serving's model is.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from training.blend import ENTRY_TYPES, History, UserHistory, bought_at, no_types

#: Entries a profile row keeps, the most recent first: a DynamoDB item holds 400 KB at most,
#: and a user past this many items keeps their newest in realtime answers.
PROFILE_ENTRIES: Final = 2_000
#: The second number of a profile row that keeps each entry's event types (older rows have
#: the first entry's weight there, never negative).
PROFILE_FORMAT: Final = -2.0


def profile_row(
    history: History, code: int, item_ids: npt.NDArray[np.str_]
) -> tuple[list[str], list[float]]:
    """A user's trained history as a store row: their item ids, and the numbers
    [newest event ms, `PROFILE_FORMAT`, then per item: weight, count, last ms, and the
    minute of the last event of each type (`ENTRY_TYPES`, 0 for none)]."""
    entries = history.user(code)
    keep = np.argsort(-entries.last_ms, kind="stable")[:PROFILE_ENTRIES]
    keep.sort()
    numbers = [float(history.user_last_ms[code]), PROFILE_FORMAT]
    for i in keep.tolist():
        numbers += [
            float(entries.weights[i]),
            float(entries.counts[i]),
            float(entries.last_ms[i]),
            *map(float, entries.last_by_type[i].tolist()),
        ]
    return [str(item_ids[entries.items[i]]) for i in keep.tolist()], numbers


def profile_history(
    items: list[str], numbers: list[float], item_code: Any
) -> tuple[UserHistory, int]:
    """A profile row back as (the user's trained history, their newest event's ms); a row
    written before `PROFILE_FORMAT` (a 0 or 1 "bought" per item) knows purchases only."""
    typed = len(numbers) > 1 and numbers[1] == PROFILE_FORMAT
    width = 3 + len(ENTRY_TYPES) if typed else 4
    table = np.asarray(numbers[2 if typed else 1 :], dtype=np.float64).reshape(-1, width)
    codes = [item_code(i) for i in items]
    known = np.array([c is not None for c in codes], dtype=bool)
    order = np.array([c for c in codes if c is not None], dtype=np.int64)
    table = table[known]
    sort = np.argsort(order, kind="stable")
    table = table[sort]
    last_ms = table[:, 2].astype(np.int64)
    types = table[:, 3:].astype(np.uint32) if typed else bought_at(table[:, 3] > 0, last_ms)
    return (
        UserHistory(
            order[sort],
            table[:, 0].astype(np.float32),
            table[:, 1].astype(np.float32),
            last_ms,
            types,
        ),
        int(numbers[0]),
    )


def no_users(half_life_days: float) -> History:
    """A history of no users, keeping the decay that folding new events in needs."""
    empty = np.empty(0, np.int64)
    return History(
        indptr=np.zeros(1, np.int64),
        items=empty,
        weights=np.empty(0, np.float32),
        counts=np.empty(0, np.float32),
        last_ms=empty,
        last_by_type=no_types(0),
        user_last_ms=empty,
        half_life_days=None if np.isnan(half_life_days) else half_life_days,
    )
