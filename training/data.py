"""Interactions as integer codes and sparse matrices, and the time-based holdout.

The curated zone is read once through DuckDB into columns (no Python object per event);
user and item ids become dense integer codes, kept in id maps beside every model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from common.contract import EVENT_TYPES
from common.lake import Lake
from etl.errors import CuratedZoneEmpty
from etl.sql import connect, reading_curated
from training.blend import ENTRY_TYPES, History, minute_of
from training.errors import NotEnoughData

#: How much each kind of event says about a shopper's taste. A purchase says most.
DEFAULT_WEIGHTS: Final[Mapping[str, float]] = {"view": 1.0, "add_to_cart": 4.0, "purchase": 8.0}

IntArray = npt.NDArray[np.int64]
Codes = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Interactions:
    """Every curated interaction as parallel arrays, with the id of each code."""

    user_ids: npt.NDArray[np.str_]
    item_ids: npt.NDArray[np.str_]
    user: Codes
    item: Codes
    kind: npt.NDArray[np.int8]
    ts_ms: IntArray
    #: The first day read, when training was given a window; None: all of history.
    since: date | None = None

    @property
    def n_users(self) -> int:
        """Distinct users."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Distinct items."""
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, mask: npt.NDArray[np.bool_]) -> Interactions:
        """The interactions within `mask`, with the same user and item codes."""
        return replace(
            self,
            user=self.user[mask],
            item=self.item[mask],
            kind=self.kind[mask],
            ts_ms=self.ts_ms[mask],
        )

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Interactions:
        """From columns user_id, item_id, event_type and ts_ms (epoch milliseconds)."""
        if table.num_rows == 0:
            raise NotEnoughData("the curated zone has no interactions; run `recs etl` first")
        users = pc.dictionary_encode(table["user_id"]).combine_chunks()
        items = pc.dictionary_encode(table["item_id"]).combine_chunks()
        kinds = pc.index_in(table["event_type"], value_set=pa.array(EVENT_TYPES))
        # Sort the dictionaries so that codes do not depend on the order rows were read in.
        user_ids, user = _sorted_codes(users)
        item_ids, item = _sorted_codes(items)
        return cls(
            user_ids=user_ids,
            item_ids=item_ids,
            user=user,
            item=item,
            kind=np.asarray(kinds.to_numpy(zero_copy_only=False), dtype=np.int8),
            ts_ms=np.asarray(table["ts_ms"].to_numpy(), dtype=np.int64),
        )

    def repeat_rates(self) -> dict[str, float]:
        """How often users come back to an item they already had: per event type, the share
        of its events whose (user, item) pair has an earlier event of any type; `any` over
        all events. A ratings log, where each pair occurs once, is 0 everywhere."""
        pair = self.user.astype(np.int64) * self.n_items + self.item
        order = np.lexsort((self.ts_ms, pair))
        again = np.zeros(len(pair), dtype=bool)
        again[order[1:]] = pair[order[1:]] == pair[order[:-1]]
        rates = {"any": float(again.mean()) if len(again) else 0.0}
        for code, name in enumerate(EVENT_TYPES):
            of_kind = self.kind == code
            if of_kind.any():
                rates[name] = float(again[of_kind].mean())
        return rates

    def matrix(
        self,
        weights: Mapping[str, float] = DEFAULT_WEIGHTS,
        mask: npt.NDArray[np.bool_] | None = None,
        half_life_days: float | None = None,
    ) -> sp.csr_matrix:
        """Users x items, each cell the summed weight of that user's events on that item.

        With `half_life_days`, an event's weight halves for every that many days it is older
        than the user's own newest event: recent interests weigh more, and a user whose
        events are all old keeps a whole profile (measured from the catalog's newest event,
        years of half-lives would round every weight to 0). Weights are summed in float64.
        """
        return self.history(weights, mask, half_life_days).weight_matrix(self.n_items)

    def touched(self, mask: npt.NDArray[np.bool_] | None = None) -> sp.csr_matrix:
        """Users x items: how many events (of any type, within `mask`) each user had on each
        item; nonzero where the user touched it."""
        return self.matrix(dict.fromkeys(EVENT_TYPES, 1.0), mask)

    def history(
        self,
        weights: Mapping[str, float] = DEFAULT_WEIGHTS,
        mask: npt.NDArray[np.bool_] | None = None,
        half_life_days: float | None = None,
    ) -> History:
        """Every user's history, one entry per (user, item): decayed weights as `matrix`
        computes them, event counts, the last time, and the last time of each event type."""
        keep = np.arange(len(self)) if mask is None else np.flatnonzero(mask)
        user, item, ts = self.user[keep], self.item[keep], self.ts_ms[keep]
        kind = self.kind[keep]
        user_last = np.full(self.n_users, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(user_last, user, ts)
        per_kind = np.array([float(weights.get(k, 0.0)) for k in EVENT_TYPES], dtype=np.float64)
        values = per_kind[kind]
        if half_life_days is not None:
            values = values * np.exp2(-(user_last[user] - ts) / 86_400_000 / half_life_days)
        key = user.astype(np.int64) * self.n_items + item
        order = np.argsort(key, kind="stable")
        key, values, ts = key[order], values[order], ts[order]
        minutes = minute_of(ts)
        kinds = kind[order]
        # Each event's minute in its type's column (0 elsewhere): the max per entry is the
        # last event of each type.
        typed = np.zeros((len(key), len(ENTRY_TYPES)), np.uint32)
        typed[np.arange(len(key)), kinds] = minutes
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]])) if len(key) else key
        pair_users = (key[starts] // self.n_items).astype(np.int64)
        indptr = np.concatenate(
            [[0], np.cumsum(np.bincount(pair_users, minlength=self.n_users))]
        ).astype(np.int64)
        reduce = len(starts) > 0
        return History(
            indptr=indptr,
            items=(key[starts] % self.n_items).astype(np.int64),
            weights=(np.add.reduceat(values, starts) if reduce else values).astype(np.float32),
            counts=(np.add.reduceat(np.ones(len(key)), starts) if reduce else values).astype(
                np.float32
            ),
            last_ms=np.maximum.reduceat(ts, starts) if reduce else ts,
            last_by_type=np.maximum.reduceat(typed, starts, axis=0) if reduce else typed,
            user_last_ms=np.where(user_last == np.iinfo(np.int64).min, 0, user_last),
            half_life_days=half_life_days,
        )


def _sorted_codes(encoded: pa.DictionaryArray) -> tuple[npt.NDArray[np.str_], Codes]:
    names = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    order = np.argsort(names, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes = rank[np.asarray(encoded.indices.to_numpy(), dtype=np.int64)].astype(np.int32)
    return names[order].astype(str), codes


def load_events(lake: Lake, since: date | None = None) -> Interactions:
    """Every curated interaction of the lake, or those of `since` and after: the curated
    zone is partitioned by `event_date`, so a window reads only its own days' files."""
    con = connect(lake)
    query = "SELECT user_id, item_id, event_type, epoch_ms(ts) AS ts_ms FROM interactions"
    with reading_curated(lake):
        if since is None:
            table = con.sql(query).to_arrow_table()
        else:
            table = con.sql(f"{query} WHERE event_date >= ?", params=[since]).to_arrow_table()
    if since is not None and table.num_rows == 0:
        raise NotEnoughData(
            f"no curated interactions since {since} (RECS_TRAIN_WINDOW_DAYS); widen the "
            "window or run `recs etl`"
        )
    return replace(Interactions.from_arrow(table), since=since)


@dataclass(frozen=True)
class Split:
    """A time-based holdout: train on `train`, score `test_users`, compare with `truth`."""

    train: npt.NDArray[np.bool_]
    test_users: Codes
    truth: sp.csr_matrix  # test users x items, 1 where a held-out event touched the item
    #: For a split on global time: the cut; what "now" is for the trained side.
    cut_ms: int | None = None

    @property
    def n_test(self) -> int:
        """Users evaluated."""
        return len(self.test_users)


def unseen_truth(log: Interactions, split: Split) -> sp.csr_matrix:
    """A split's truth without the items each scored user had touched before its cut: what
    they discovered, which no replay of their own history can find. The truth may have more
    columns than the log has items (items first seen after the cut, new to everyone)."""
    seen = log.touched(split.train)[split.test_users.astype(np.int64)]
    if split.truth.shape[1] > seen.shape[1]:
        extra = sp.csr_matrix((seen.shape[0], split.truth.shape[1] - seen.shape[1]))
        seen = sp.hstack([seen, extra]).tocsr()
    unseen = split.truth - split.truth.multiply(seen > 0)
    unseen.eliminate_zeros()
    return unseen.tocsr()


def time_split(
    log: Interactions,
    *,
    test_users: float = 0.1,
    holdout: float = 0.1,
    seed: int = 42,
    mask: npt.NDArray[np.bool_] | None = None,
) -> Split:
    """Hold out, for a random `test_users` share of users, their newest `holdout` of events
    (of those within `mask`, if given: the split then trains on the rest of `mask` alone).

    This is how Amazon Personalize evaluates a solution version: the truth is what each
    held-out user did last. Users with fewer than 2 events are never held out.
    """
    if mask is not None:
        inner = time_split(log.subset(mask), test_users=test_users, holdout=holdout, seed=seed)
        train = np.zeros(len(log), dtype=bool)
        train[np.flatnonzero(mask)[inner.train]] = True
        return replace(inner, train=train)
    counts = np.bincount(log.user, minlength=log.n_users)
    eligible = np.flatnonzero(counts >= 2)
    if len(eligible) < 10:
        raise NotEnoughData(
            f"only {len(eligible)} users have 2 or more interactions; evaluation needs 10"
        )
    rng = np.random.default_rng(seed)
    n_test = max(10, round(len(eligible) * test_users))
    chosen = np.sort(rng.choice(eligible, size=min(n_test, len(eligible)), replace=False))
    is_test = np.zeros(log.n_users, dtype=bool)
    is_test[chosen] = True
    # Rank each event within its user, newest last (ties broken by position, stably).
    order = np.lexsort((np.arange(len(log)), log.ts_ms, log.user))
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
    rank = np.empty(len(log), dtype=np.int64)
    rank[order] = np.arange(len(log)) - starts[log.user[order]]
    held_per_user = np.maximum(1, np.ceil(counts * holdout).astype(np.int64))
    held = is_test[log.user] & (rank >= counts[log.user] - held_per_user[log.user])
    row_of = np.full(log.n_users, -1, dtype=np.int64)
    row_of[chosen] = np.arange(len(chosen))
    truth = sp.csr_matrix(
        (np.ones(int(held.sum()), dtype=np.float32), (row_of[log.user[held]], log.item[held])),
        shape=(len(chosen), log.n_items),
    )
    truth.data[:] = 1.0
    truth.sum_duplicates()
    truth.data[:] = 1.0
    return Split(train=~held, test_users=chosen.astype(np.int32), truth=truth)


def item_categories(lake: Lake) -> dict[str, str]:
    """Each catalog item's category, from the curated items table (empty if none yet).

    Items without a category are left out; the fallbacks then use the whole shop.
    """
    try:
        con = connect(lake)
    except CuratedZoneEmpty:
        return {}
    with reading_curated(lake):
        rows = con.execute(
            "SELECT item_id, category FROM items WHERE category IS NOT NULL"
        ).fetchall()
    return {str(item): str(category) for item, category in rows}


#: The share of events, by time, that a global split holds out.
HOLDOUT: Final = 0.1


def global_split(
    log: Interactions,
    *,
    holdout: float = HOLDOUT,
    cut_ms: int | None = None,
    mask: npt.NDArray[np.bool_] | None = None,
    max_users: int | None = None,
    seed: int = 42,
) -> Split:
    """Train on everything before a moment, score what each user did after it.

    The moment is `cut_ms`, or the time before which `1 - holdout` of the events (within
    `mask`) happened. Scored users are those with events on both sides (at most `max_users`
    of them, drawn at random); their truth is every item they touched after the cut,
    repeats included: whether a repeat may be recommended is the policy's to decide.
    """
    inside = np.ones(len(log), dtype=bool) if mask is None else mask
    if cut_ms is None:
        times = np.sort(log.ts_ms[inside])
        if len(times) < 2:
            raise NotEnoughData("too few interactions to hold any out")
        cut_ms = int(times[min(len(times) - 1, int(len(times) * (1 - holdout)))])
    train = inside & (log.ts_ms < cut_ms)
    after = inside & ~train
    known = np.zeros(log.n_users, dtype=bool)
    known[log.user[train]] = True
    users = np.unique(log.user[after & known[log.user]])
    if len(users) < 10:
        raise NotEnoughData(
            f"only {len(users)} users have interactions on both sides of "
            f"{datetime.fromtimestamp(cut_ms / 1000, UTC):%Y-%m-%d %H:%M}; evaluation needs 10"
        )
    if max_users is not None and len(users) > max_users:
        rng = np.random.default_rng(seed)
        users = np.sort(rng.choice(users, size=max_users, replace=False))
    row_of = np.full(log.n_users, -1, dtype=np.int64)
    row_of[users] = np.arange(len(users))
    held = after & (row_of[log.user] >= 0)
    truth = sp.csr_matrix(
        (np.ones(int(held.sum()), dtype=np.float32), (row_of[log.user[held]], log.item[held])),
        shape=(len(users), log.n_items),
    )
    truth.sum_duplicates()
    truth.data[:] = 1.0
    return Split(train=train, test_users=users.astype(np.int32), truth=truth, cut_ms=cut_ms)
