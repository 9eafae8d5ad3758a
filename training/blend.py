"""What a user is served: a blend of the signals the data showed pay, chosen per shop.

numpy only: serving scores realtime answers with this module, and its Lambda package carries
neither scipy nor implicit (a test checks the import graph). Training computes the same blend
for many users at once with scipy (`training.scoring`); a parity test holds the two together.

For one user, each candidate item gets four components, each between 0 and 1:

- `collab`: the chosen recipe's score from the user's whole history, for the items the user
  has not touched, over the best of them (negative scores count as 0); the user's own items
  come back, where the policy lets them, on their own components;
- `own`: log(1 + how often the user touched the item), over the user's most touched item;
- `recency`: 2^-(days since the user last touched the item / `recency_days`);
- `trending`: the item's popularity, each event halving every `trending_half_life_days` (none:
  all time), over the catalog's most popular item.

The score is the weighted sum. Candidates are the recipe's top `candidates` new items, the
user's own items and the top `candidates` trending items; nothing else can win. The `repeats`
policy says which of the user's own items may come back: `exclude-seen` (none of them),
`exclude-purchased` (not what they bought) or `allow` (all of them, though not what they
bought in the last `rebuy_after_hours`). Items scoring 0 are never shown: a user without a
positive score gets the popular answer instead of an arbitrary list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from training.ranker import DAY_MS, SHORTLIST, Trees, item_stats, squash, table, user_row

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
Minutes = npt.NDArray[np.uint32]
#: Whether a user's own items come back: none of them, none they bought, or all (`recs train
#: --repeats`, /health's `repeats`).
Repeats = Literal["exclude-seen", "exclude-purchased", "allow"]
REPEAT_POLICIES: Final[tuple[Repeats, ...]] = ("exclude-seen", "exclude-purchased", "allow")
#: The policies' names in manifests written before 2026-12-03 (`exclude: seen|purchased|none`).
_OLD_POLICIES: Final[dict[str, Repeats]] = {
    "seen": "exclude-seen",
    "purchased": "exclude-purchased",
    "none": "allow",
}
HOUR_MS: Final = 3_600_000
MINUTE_MS: Final = 60_000
#: The event types a history entry remembers the last time of, in its columns' order: the
#: event contract's (`common.contract.EVENT_TYPES`, repeated so that this stays numpy only).
ENTRY_TYPES: Final = ("view", "add_to_cart", "purchase")
PURCHASE: Final = ENTRY_TYPES.index("purchase")
#: Candidates taken from the recipe, and from trending items, per user.
CANDIDATES: Final = 100
#: How fast a user's own items lose the recency component.
RECENCY_DAYS: Final = 90.0
#: See `Blend.rebuy_after_hours`.
REBUY_AFTER_HOURS: Final = 1.0


@dataclass(frozen=True)
class Blend:
    """The weights of the four components and the repeat policy, as training chose them."""

    collab: float = 1.0
    own: float = 0.0
    recency: float = 0.0
    trending: float = 0.25
    repeats: Repeats = "exclude-purchased"
    trending_half_life_days: float | None = 7.0
    recency_days: float = RECENCY_DAYS
    candidates: int = CANDIDATES
    #: Under `allow`, an item the user bought comes back only this long after their last
    #: touch of it: nobody wants what they just put in their basket offered again (on online
    #: retail, an hour lifts the replay's realtime answers by a seventh and costs the batch
    #: output nothing).
    rebuy_after_hours: float = REBUY_AFTER_HOURS

    def to_json(self) -> dict[str, Any]:
        """The manifest's `blend` entry."""
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Blend:
        """Back from the manifest, including one written before the policy was `repeats`."""
        doc = dict(doc)
        if "exclude" in doc:
            doc["repeats"] = _OLD_POLICIES[doc.pop("exclude")]
        return cls(**doc)

    @property
    def weights(self) -> tuple[float, float, float, float]:
        """(collab, own, recency, trending)."""
        return self.collab, self.own, self.recency, self.trending

    def describe(self) -> str:
        """The weights in words: `collab 1, own 3, recency 0.3, trending 1`."""
        names = ("collab", "own", "recency", "trending")
        return ", ".join(f"{n} {w:g}" for n, w in zip(names, self.weights, strict=True))


#: The baselines, as blends: all-time popularity, and popularity halving every 7 days.
POPULARITY: Final = Blend(collab=0.0, trending=1.0, repeats="allow", trending_half_life_days=None)
TRENDING: Final = Blend(collab=0.0, trending=1.0, repeats="allow", trending_half_life_days=7.0)
#: The baseline a shop of rebuyers must beat: the user's own items, most touched first, then
#: the most popular (the trending part only breaks ties and fills; an own item always wins).
OWN_THEN_POPULAR: Final = Blend(
    collab=0.0, own=1.0, trending=0.001, repeats="allow", trending_half_life_days=None
)


@dataclass(frozen=True)
class UserHistory:
    """One user's interactions, one entry per item: what the blend and the policy read."""

    items: Ints
    #: Each item's event weights summed, halving every half-life back from the user's newest
    #: event: the recipe's input.
    weights: Floats
    counts: Floats
    last_ms: Ints
    #: Per entry and event type (`ENTRY_TYPES`), the minute (since the epoch) of the user's
    #: last event of that type on the item; 0 where they had none: what filters on
    #: `Interactions.EVENT_TYPE` read.
    last_by_type: Minutes

    @property
    def purchased(self) -> npt.NDArray[np.bool_]:
        """Whether the user ever bought each item."""
        return self.last_by_type[:, PURCHASE] > 0

    @classmethod
    def empty(cls) -> UserHistory:
        """A user with no history."""
        return cls(
            np.empty(0, np.int64),
            np.empty(0, np.float32),
            np.empty(0, np.float32),
            np.empty(0, np.int64),
            no_types(0),
        )


@dataclass(frozen=True)
class History:
    """Every user's history as CSR arrays, one entry per (user, item): `history.npz`."""

    indptr: Ints
    items: Ints
    weights: Floats
    counts: Floats
    last_ms: Ints
    #: `UserHistory.last_by_type`, for every entry.
    last_by_type: Minutes
    #: Each user's newest event: the point the weights' decay is measured back from.
    user_last_ms: Ints
    half_life_days: float | None

    @property
    def purchased(self) -> npt.NDArray[np.bool_]:
        """Whether each entry's user ever bought its item."""
        return self.last_by_type[:, PURCHASE] > 0

    @property
    def n_users(self) -> int:
        """Users in the history."""
        return len(self.indptr) - 1

    def user(self, code: int) -> UserHistory:
        """One user's entries."""
        start, stop = int(self.indptr[code]), int(self.indptr[code + 1])
        return UserHistory(
            self.items[start:stop],
            self.weights[start:stop],
            self.counts[start:stop],
            self.last_ms[start:stop],
            self.last_by_type[start:stop],
        )

    def item_stats(self, n_items: int, now_ms: int) -> npt.NDArray[np.float64]:
        """The learned ranker's item statistics (`ranker.item_stats`) at `now_ms`."""
        return item_stats(self.items, self.counts, self.last_ms, n_items, now_ms)

    def weight_matrix(self, n_items: int) -> Any:
        """Users x items of the decayed weights (scipy CSR; training only: serving has no scipy)."""
        import scipy.sparse as sp

        matrix = sp.csr_matrix(
            (self.weights, self.items, self.indptr), shape=(self.n_users, n_items)
        )
        matrix.eliminate_zeros()
        return matrix

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """What `history.npz` holds."""
        return {
            "indptr": self.indptr,
            "items": self.items,
            "weights": self.weights,
            "counts": self.counts,
            "last_ms": self.last_ms,
            "last_by_type": self.last_by_type,
            "user_last_ms": self.user_last_ms,
            "half_life_days": np.array(
                np.nan if self.half_life_days is None else self.half_life_days
            ),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[Any]]) -> History:
        """Back from `history.npz`."""
        half_life = float(arrays["half_life_days"])
        return cls(
            indptr=np.asarray(arrays["indptr"], np.int64),
            items=np.asarray(arrays["items"], np.int64),
            weights=np.asarray(arrays["weights"], np.float32),
            counts=np.asarray(arrays["counts"], np.float32),
            last_ms=np.asarray(arrays["last_ms"], np.int64),
            last_by_type=(
                np.asarray(arrays["last_by_type"], np.uint32)
                if "last_by_type" in arrays
                # Written before histories kept event types: purchases only, at their last
                # touch (filters on other types see nothing until the next training).
                else bought_at(np.asarray(arrays["purchased"], bool), arrays["last_ms"])
            ),
            user_last_ms=np.asarray(arrays["user_last_ms"], np.int64),
            half_life_days=None if np.isnan(half_life) else half_life,
        )


def no_types(n: int) -> Minutes:
    """`last_by_type` of n entries with no event of any type."""
    return np.zeros((n, len(ENTRY_TYPES)), np.uint32)


def minute_of(ts_ms: npt.NDArray[np.integer[Any]] | int) -> Any:
    """The minute since the epoch of a time in ms, at least 1 (0 means "never")."""
    return np.maximum(np.asarray(ts_ms, np.int64) // MINUTE_MS, 1).astype(np.uint32)


def bought_at(purchased: npt.NDArray[np.bool_], last_ms: npt.NDArray[Any]) -> Minutes:
    """`last_by_type` from what histories held before they kept types: a purchase flag, dated
    by the entry's last touch."""
    found = no_types(len(purchased))
    found[:, PURCHASE] = np.where(purchased, minute_of(np.asarray(last_ms, np.int64)), 0)
    return found


def with_events(
    history: UserHistory,
    newest_ms: int,
    events: list[tuple[int, str, int]],
    event_weights: dict[str, float],
    half_life_days: float | None,
) -> UserHistory:
    """A user's trained history with newer events added: (item code, event type, ts_ms).

    The decay is measured back from the newest event, as training measures it, so the old
    entries are scaled down by the time the new events add.
    """
    if not events:
        return history
    newest = max(newest_ms, max(ts for _, _, ts in events))

    def decay(age_ms: float) -> float:
        return 1.0 if half_life_days is None else float(np.exp2(-age_ms / DAY_MS / half_life_days))

    scale = decay(newest - newest_ms)
    # Column by column as Python floats: indexing numpy scalars entry by entry cost a third
    # of a realtime answer's scoring.
    columns = zip(
        history.items.tolist(),
        (history.weights.astype(np.float64) * scale).tolist(),
        history.counts.astype(np.float64).tolist(),
        history.last_ms.astype(np.float64).tolist(),
        history.last_by_type.tolist(),
        strict=True,
    )
    entries: dict[int, list[float]] = {
        item: [weight, count, last, *types] for item, weight, count, last, types in columns
    }
    width = 3 + len(ENTRY_TYPES)
    for item, event_type, ts in events:
        entry = entries.setdefault(item, [0.0] * width)
        entry[0] += float(event_weights.get(event_type, 0.0)) * decay(newest - ts)
        entry[1] += 1.0
        entry[2] = max(entry[2], float(ts))
        if event_type in ENTRY_TYPES:
            column = 3 + ENTRY_TYPES.index(event_type)
            entry[column] = max(entry[column], float(max(ts // MINUTE_MS, 1)))
    items = np.array(sorted(entries), dtype=np.int64)
    table = np.array([entries[i] for i in items.tolist()], dtype=np.float64).reshape(-1, width)
    return UserHistory(
        items,
        table[:, 0].astype(np.float32),
        table[:, 1].astype(np.float32),
        table[:, 2].astype(np.int64),
        table[:, 3:].astype(np.uint32),
    )


def trending_scores(
    item: npt.NDArray[np.integer[Any]],
    ts_ms: Ints,
    n_items: int,
    half_life_days: float | None,
    now_ms: int,
) -> Floats:
    """Each item's popularity, each event halving every half-life back from `now_ms`, over the
    most popular item's (so the best is 1); computed in float64, so old events never vanish."""
    if half_life_days is None:
        weights = np.ones(len(item), dtype=np.float64)
    else:
        weights = np.exp2(-(now_ms - ts_ms.astype(np.float64)) / DAY_MS / half_life_days)
    counts = np.bincount(item, weights=weights, minlength=n_items)
    top = counts.max() if len(counts) else 0.0
    return (counts / top if top > 0 else counts).astype(np.float32)


def row_positions(indptr: Ints, rows: Ints) -> tuple[Ints, Ints]:
    """The positions of some CSR rows' entries, row after row, and each row's length."""
    starts = indptr[rows].astype(np.int64)
    lengths = indptr[rows + 1].astype(np.int64) - starts
    first = np.cumsum(lengths) - lengths  # where each row begins in the result
    shift = np.repeat(starts - first, lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + shift, lengths


def position_in(ids: npt.NDArray[np.str_], wanted: str) -> int | None:
    """Where `wanted` is in sorted `ids`, if it is there."""
    position = int(np.searchsorted(ids, wanted))
    if position < len(ids) and ids[position] == wanted:
        return position
    return None


def spread_rows(
    indptr: Ints, indices: Ints, data: Floats, rows: Ints, weights: Floats, n: int
) -> Floats:
    """The sum of some rows of a CSR matrix (its three arrays), each times its weight: a
    dense vector of length n (the matrix's columns)."""
    positions, lengths = row_positions(indptr, rows)
    if not len(positions):
        return np.zeros(n, dtype=np.float32)
    scale = np.repeat(weights, lengths)
    return np.bincount(indices[positions], weights=data[positions] * scale, minlength=n).astype(
        np.float32
    )


def top_by_score(scores: Floats, m: int) -> Ints:
    """The codes of the m best positive scores, best first, ties by code."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > m:
        positive = positive[np.argpartition(-scores[positive], m - 1)[:m]]
    return positive[np.lexsort((positive, -scores[positive]))].astype(np.int64)


def recommend_one(
    blend: Blend,
    collab: Floats | None,
    history: UserHistory,
    trending: Floats,
    trending_top: Ints,
    now_ms: int,
    k: int,
    *,
    skip: Ints | None = None,
    allowed: npt.NDArray[np.bool_] | None = None,
    ranker: Trees | None = None,
    stats: npt.NDArray[np.float64] | None = None,
) -> list[tuple[int, float]]:
    """One user's top k (code, score), best first, ties by code, filled up with trending
    items when fewer score; empty if nothing scores.

    `collab` is the recipe's dense score row for the user (None: no recipe score); `skip`
    codes are left out (the request's exclusions); `allowed` keeps to a subset (a category).
    With a `ranker` (and the version's item `stats`), the candidates the blend lets through
    are ordered by the ranker's score instead of the blend's.
    """
    n_items = len(trending)
    # Within a category every scored item is a candidate, so a small category still fills.
    m = blend.candidates if allowed is None else n_items
    collab_part = np.zeros(n_items, dtype=np.float32)
    if collab is not None and blend.collab > 0:
        if len(history.items):
            collab = collab.copy()
            collab[history.items] = 0  # the recipe proposes what the user has not touched
        top = top_by_score(collab, m)
        if len(top):
            collab_part[top] = np.clip(collab[top], 0, None) / collab[top[0]]
    own = np.zeros(n_items, dtype=np.float32)
    recency = np.zeros(n_items, dtype=np.float32)
    if len(history.items):
        logs = np.log1p(history.counts.astype(np.float64))
        own[history.items] = (logs / logs.max()).astype(np.float32) if logs.max() > 0 else 0
        age = np.maximum(0, now_ms - history.last_ms) / DAY_MS
        recency[history.items] = np.exp2(-age / blend.recency_days).astype(np.float32)
    if allowed is not None:
        trending_top = np.flatnonzero(allowed & (trending > 0))
    candidates = np.unique(
        np.concatenate([np.flatnonzero(collab_part > 0), history.items, trending_top])
    )
    score = (
        blend.collab * collab_part[candidates]
        + blend.own * own[candidates]
        + blend.recency * recency[candidates]
        + blend.trending * trending[candidates]
    ).astype(np.float32)
    keep = score > 0
    held = held_back(blend, history, now_ms)
    if len(held):
        keep &= ~np.isin(candidates, held)
    if skip is not None and len(skip):
        keep &= ~np.isin(candidates, skip)
    if allowed is not None:
        keep &= allowed[candidates]
    codes, score = candidates[keep], score[keep]
    if ranker is not None and len(codes):
        assert stats is not None, "a ranker needs the item statistics"
        # The ranker reorders the blend's best SHORTLIST; the rest follow in the blend's
        # order, each below the last reordered score (only a request for more than
        # SHORTLIST items reaches them).
        by_blend = np.lexsort((codes, -score))
        short, rest = by_blend[:SHORTLIST], by_blend[SHORTLIST:]
        learned = _learned(ranker, stats, blend, codes[short], history, now_ms, (
            collab_part[codes[short]], own[codes[short]], recency[codes[short]],
            trending[codes[short]],
        ))  # fmt: skip
        tail = score[rest] / max(float(score[rest[0]]), 1e-30) if len(rest) else score[rest]
        reordered = np.concatenate([learned, 0.5 * float(learned.min()) * tail]).astype(np.float32)
        codes = np.concatenate([codes[short], codes[rest]])
        score = reordered
    order = np.lexsort((codes, -score))[:k]
    found = [(int(codes[i]), float(score[i])) for i in order]
    blocked = ([] if skip is None else skip.tolist()) + held.tolist()
    return fill(found, trending, k, blocked, allowed)


def _learned(
    ranker: Trees,
    stats: npt.NDArray[np.float64],
    blend: Blend,
    codes: Ints,
    history: UserHistory,
    now_ms: int,
    parts: tuple[Floats, Floats, Floats, Floats],
) -> Floats:
    """The ranker's scores of one user's candidates, from the features the batch path reads
    (`training.scoring.entries`)."""
    at = np.searchsorted(history.items, codes)
    at = np.minimum(at, max(len(history.items) - 1, 0))
    seen = (history.items[at] == codes) if len(history.items) else np.zeros(len(codes), bool)
    age = np.where(seen, np.maximum(0, now_ms - history.last_ms[at]) / DAY_MS, 0.0)
    # Batch components are float64 sums of these float32 values; the same values here.
    comps = np.column_stack([np.asarray(p, np.float64) for p in parts])
    user = user_row(history.counts, history.last_ms, now_ms)
    features = table(
        comps,
        blend.weights,
        seen,
        seen & history.purchased[at] if len(history.items) else seen,
        age,
        np.where(seen, history.counts[at], 0.0).astype(np.float64),
        codes,
        stats,
        np.repeat(user[None, :], len(codes), axis=0),
    )
    return squash(ranker.raw(features))


def held_back(blend: Blend, history: UserHistory, now_ms: int) -> Ints:
    """The user's own items the repeat policy keeps out of their answer at `now_ms`."""
    if blend.repeats == "exclude-seen":
        return history.items
    held = history.purchased
    if blend.repeats == "allow":
        held = held & (now_ms - history.last_ms < blend.rebuy_after_hours * HOUR_MS)
    return history.items[held]


def fill(
    found: list[tuple[int, float]],
    trending: Floats,
    k: int,
    blocked: list[int],
    allowed: npt.NDArray[np.bool_] | None = None,
) -> list[tuple[int, float]]:
    """A short answer filled up to k with trending items, after what scored.

    An empty answer stays empty (the caller answers with popular items and says so). Filled
    items score the last scored item's score times their trending score, so scores still
    fall down the list.
    """
    if not found or len(found) >= k:
        return found
    taken = {code for code, _ in found} | set(blocked)
    last = found[-1][1]
    filled = list(found)
    wanted = k + len(taken) if allowed is None else len(trending)
    for code in top_by_score(trending, wanted).tolist():
        if code in taken or (allowed is not None and not allowed[code]):
            continue
        filled.append((code, last * float(trending[code])))
        if len(filled) == k:
            break
    return filled
