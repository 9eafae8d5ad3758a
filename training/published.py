"""A trained model version as numpy arrays, and one user's answer from it: what serving holds.

numpy only: the API's Lambda package carries neither scipy nor implicit, so this module reads
a version's `.npz` files itself and scores with numpy alone (a test checks the import graph).
Training's gate uses it too, to score the version in production on today's holdout.

A user's answer is the blend of `training.blend` over their whole history: the trained one
(`history.npz`) with any newer events folded in. The recipe's part is the same arithmetic as
the training recipes' (a parity test holds it to them):

- neighbour models (item-kNN, EASE): the user's decayed history times each item's top-N
  neighbours;
- ALS: the user's factors folded in from their history (one ALS step against the fixed item
  factors), times every item's factors.

Every user's trained history is most of a version's size: at millions of users, past the API
Lambda's memory (`python -m benchmarks.big_shop` measures both loads). Loaded with
`users="store"`, a version holds
only its item side (`item-stats.npz` stands in for what the history gave the ranker), and
each user's trained history comes with the request, from the profile row `recs publish`
wrote for them into the online store (`training.profiles`).
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from common.contract import epoch_ms
from common.errors import LakeError
from common.filters import BoundFilter
from common.lake import Lake, read_json
from common.layout import MODELS
from training.als_step import fold_in, gram_matrix
from training.artifacts import load_arrays
from training.blend import (
    Blend,
    History,
    UserHistory,
    held_back,
    position_in,
    recommend_one,
    spread_rows,
    top_by_score,
    with_events,
)
from training.errors import ModelUnreadable
from training.item_fields import ItemFields, Mask, Selection, masks_kept
from training.new_items import NewItems, explore, explore_slots
from training.profiles import no_users
from training.ranker import Trees
from training.registry import Manifest, manifest_key

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
#: Where a loaded version finds each user's trained history: its own `history.npz`, or the
#: profile rows of the online store.
Users = Literal["lake", "store"]
#: Trending items whose attributes make a shopper-without-history's profile, for exploring.
TRENDING_PROFILE: Final = 50


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
        return spread_rows(self.indptr, self.indices, self.data, items, weights, n_items)


@dataclass(frozen=True)
class PublishedModel:
    """Everything one version needs to answer, loaded once."""

    version: str
    recipe: str | None
    params: Mapping[str, Any]
    blend: Blend
    user_ids: npt.NDArray[np.str_]
    item_ids: npt.NDArray[np.str_]
    categories: npt.NDArray[np.str_]
    trending: Floats
    weights: Mapping[str, float]
    history: History
    similar: NeighbourTable
    #: The newest event the version was trained on: a user with a later one has news.
    last_event_ms: int = 0
    created_at: str = ""
    #: What the version serves, in words (the recipe and its parameters, or none).
    label: str = ""
    neighbours: NeighbourTable | None = None
    item_factors: Floats | None = None
    #: The learned second stage, where training chose one.
    ranker: Trees | None = None
    #: Where users' trained histories are: here (`history`), or the store's profile rows.
    users: Users = "lake"
    #: The ranker's item statistics, when loaded without the users' histories.
    item_stats: npt.NDArray[np.float64] | None = None
    #: Attribute vectors of its items and of the catalog's items without events, and which
    #: are young (`training.new_items`); None for a version trained without a catalog.
    new_items: NewItems | None = None
    #: The catalog's fields of every code, which filters read (`training.item_fields`).
    fields: ItemFields | None = None

    @property
    def n_items(self) -> int:
        """Items the version knows."""
        return len(self.item_ids)

    @classmethod
    def load(cls, lake: Lake, version: str, users: Users = "lake") -> PublishedModel:
        """Read a version's manifest and arrays from the lake; `ModelUnreadable` names what is
        missing or damaged. `users="store"` leaves every user's history out (see above)."""
        try:
            return cls._load(lake, version, users)
        except FileNotFoundError as exc:
            raise ModelUnreadable(
                f"model version {version} lacks {exc.filename or exc}; publish another "
                "version (`recs models rollback`), or train again"
            ) from None
        except (
            LakeError,
            OSError,
            EOFError,
            zipfile.BadZipFile,
            ValueError,
            KeyError,
            TypeError,
        ) as exc:
            raise ModelUnreadable(
                f"model version {version} cannot be read ({type(exc).__name__}: {exc}); "
                "publish another version (`recs models rollback`), or train again"
            ) from exc

    @classmethod
    def _load(cls, lake: Lake, version: str, users: Users) -> PublishedModel:
        prefix = f"{MODELS}/{version}"
        found = read_json(lake, manifest_key(version))
        if not isinstance(found, dict):
            raise ValueError(f"{manifest_key(version)} is not a JSON object")
        described = Manifest(version, found)
        manifest = described.raw
        chosen = described.chosen
        ids = load_arrays(lake, f"{prefix}/ids.npz")
        if users == "store":
            if "item-stats.npz" not in described.artifacts:
                raise ModelUnreadable(
                    f"model version {version} predates profile rows (no item-stats.npz): "
                    "serve it with RECS_MODEL_USERS=lake, or train and publish again"
                )
            side = load_arrays(lake, f"{prefix}/item-stats.npz")
            history = no_users(float(side["half_life_days"]))
            stats: npt.NDArray[np.float64] | None = np.asarray(side["item_stats"], np.float64)
            user_ids = np.empty(0, dtype=str)
        else:
            history = History.from_arrays(load_arrays(lake, f"{prefix}/history.npz"))
            stats, user_ids = None, ids["user_ids"].astype(str)
        personal = load_arrays(lake, f"{prefix}/user-personalization.npz") if chosen else {}
        return cls(
            version=version,
            recipe=chosen,
            params=manifest["params"].get(chosen, {}) if chosen else {},
            blend=Blend.from_json(manifest["blend"]),
            user_ids=user_ids,
            item_ids=ids["item_ids"].astype(str),
            categories=ids["item_categories"].astype(str),
            trending=np.asarray(
                load_arrays(lake, f"{prefix}/trending.npz")["popularity"], np.float32
            ),
            weights=manifest["event_weights"],
            history=history,
            users=users,
            item_stats=stats,
            last_event_ms=epoch_ms(datetime.fromisoformat(manifest["data"]["last_event"])),
            created_at=manifest["created_at"],
            label=described.recipe,
            similar=NeighbourTable.from_arrays(load_arrays(lake, f"{prefix}/similar-items.npz")),
            neighbours=(
                NeighbourTable.from_arrays(personal) if "neighbours_indptr" in personal else None
            ),
            item_factors=(
                np.asarray(personal["item_factors"], np.float32)
                if "item_factors" in personal
                else None
            ),
            ranker=(
                Trees.from_arrays(load_arrays(lake, f"{prefix}/ranker.npz"))
                if "ranker.npz" in described.artifacts
                else None
            ),
            new_items=(
                NewItems.from_arrays(load_arrays(lake, f"{prefix}/new-items.npz"))
                if "new-items.npz" in described.artifacts
                else None
            ),
            fields=(
                ItemFields.from_arrays(load_arrays(lake, f"{prefix}/item-fields.npz"))
                if "item-fields.npz" in described.artifacts
                else None
            ),
        )

    def item_code(self, item_id: str) -> int | None:
        """The version's code for an item id, if it knows the item."""
        return position_in(self.item_ids, item_id)

    def user_code(self, user_id: str) -> int | None:
        """The version's code for a user id, if it trained on the user."""
        return position_in(self.user_ids, user_id)

    def user_history(
        self,
        user_id: str | None,
        news: Iterable[tuple[str, str, int]] = (),
        trained_profile: tuple[UserHistory, int] | None = None,
    ) -> UserHistory:
        """The user's trained history (none for None; given, for a version loaded without its
        users' histories) with newer (item id, event type, ts_ms) events added."""
        if trained_profile is not None:
            trained, newest = trained_profile
        else:
            code = None if user_id is None else self.user_code(user_id)
            trained = UserHistory.empty() if code is None else self.history.user(code)
            newest = 0 if code is None else int(self.history.user_last_ms[code])
        events = [
            (item, kind, ts)
            for item_id, kind, ts in news
            if (item := self.item_code(item_id)) is not None
        ]
        return with_events(trained, newest, events, dict(self.weights), self.history.half_life_days)

    def collab(self, history: UserHistory) -> Floats | None:
        """The recipe's scores over every item for a history; None without one."""
        if not len(history.items) or self.recipe is None:
            return None
        if self.neighbours is not None:
            return self.neighbours.spread(history.items, history.weights, self.n_items)
        if self.item_factors is None or self._gram is None:
            return None
        user = fold_in(
            self._gram,
            self.item_factors,
            history.items,
            history.weights,
            float(self.params["alpha"]),
        )
        return (self.item_factors @ user.astype(np.float32)).astype(np.float32)

    @functools.cached_property
    def _item_stats(self) -> npt.NDArray[np.float64]:
        """The ranker's item statistics, at the version's newest event, as training had
        them for the batch output; once per version."""
        if self.item_stats is not None:
            return self.item_stats
        return self.history.item_stats(self.n_items, self.last_event_ms)

    def warm(self) -> None:
        """Compute what every answer of this version shares (the trending candidates, ALS's
        Gram matrix, the ranker's item statistics), so that no request waits for it."""
        _ = self._trending_candidates, self._gram, self._trending_order(None)
        if self.ranker is not None:
            _ = self._item_stats

    @functools.cached_property
    def _trending_candidates(self) -> Ints:
        """The blend's trending candidates, the same for every user of a version: a
        partition over every item, done once instead of on each realtime answer."""
        return top_by_score(self.trending, self.blend.candidates)

    @functools.cached_property
    def _gram(self) -> npt.NDArray[np.float64] | None:
        """ALS's Y'Y + reg I, once per version rather than once per request."""
        if self.item_factors is None:
            return None
        return gram_matrix(self.item_factors, float(self.params["regularization"]))

    def recommend(
        self,
        history: UserHistory,
        now_ms: int,
        k: int,
        *,
        skip: Iterable[str] = (),
        category: str | None = None,
        allowed: Mask | None = None,
        own_items: bool = False,
    ) -> list[tuple[str, float]]:
        """The blend's top k (item id, score) for a history; empty when nothing scores.
        `allowed` (over every code, `selection`) keeps to what a filter lets through; with
        `own_items` the filter, not the repeat policy, decides which of the user's own items
        come back."""
        codes = np.array([c for c in map(self.item_code, skip) if c is not None], np.int64)
        every = self._allowed(category, allowed)
        blend = replace(self.blend, repeats="allow", rebuy_after_hours=0.0) if own_items else None
        mine = None if every is None else every[: self.n_items]
        found = self._top(history, now_ms, k + self._slots(k), codes, mine, blend)
        explored = self._explored(found, history.items, history.weights, k, skip, every)
        return self._ids(explored)

    @property
    def n_codes(self) -> int:
        """Codes of the version: its items, then the catalog's items without events."""
        return self.n_items + (0 if self.new_items is None else len(self.new_items.cold_ids))

    def _allowed(self, category: str | None, allowed: Mask | None) -> Mask | None:
        """What a request may be answered with, over every code: its category and filter."""
        if category is not None:
            every = self.categories
            if self.new_items is not None:
                every = np.concatenate([every, self.new_items.cold_categories])
            in_category = every == category
            allowed = in_category if allowed is None else allowed & in_category
        return allowed

    def selection(
        self,
        bound: BoundFilter,
        history: UserHistory | None,
        now_ms: int,
        current: str | None = None,
    ) -> Mask:
        """The codes a bound filter lets through, for a user's history (None: no user) and,
        for related items, the item asked about."""
        fixed = not bound.source.reads_interactions and not bound.source.uses_current_item
        kept = self._selections
        if fixed and bound.key in kept:  # the same catalog rule and values: the same items
            return kept[bound.key]
        code = None if current is None else self.any_code(current)
        found = Selection.of(bound, self._fields, history, now_ms, code).allowed
        if len(found) < self.n_codes:  # a version's fields that predate its cold items
            found = np.concatenate([found, np.zeros(self.n_codes - len(found), bool)])
        found = found[: self.n_codes]
        if fixed:
            if len(kept) >= masks_kept(self.n_codes):
                kept.clear()
            found.flags.writeable = False
            kept[bound.key] = found
        return found

    @functools.cached_property
    def _selections(self) -> dict[str, Mask]:
        return {}

    def allowed_ids(self, allowed: Mask, item_ids: list[str]) -> list[bool]:
        """`allows` for many ids at once (a published row): one sorted look-up."""
        if not item_ids:
            return []
        asked = np.asarray(item_ids, dtype=str)
        position = np.minimum(np.searchsorted(self.item_ids, asked), max(self.n_items - 1, 0))
        known = (self.item_ids[position] == asked) if self.n_items else np.zeros(len(asked), bool)
        return [
            bool(allowed[p]) if k else self.allows(allowed, i)
            for p, k, i in zip(position.tolist(), known.tolist(), item_ids, strict=True)
        ]

    def any_code(self, item_id: str) -> int | None:
        """An item's code, the catalog's items without events included, if the version knows it."""
        code = self.item_code(item_id)
        if code is None and self.new_items is not None:
            code = self.new_items.cold_code(item_id)
        return code

    def allows(self, allowed: Mask, item_id: str) -> bool:
        """Whether a selection lets an item through (an item the version does not know:
        no, since nothing is known of it)."""
        code = self.any_code(item_id)
        return code is not None and bool(allowed[code])

    @functools.cached_property
    def _fields(self) -> ItemFields:
        """The version's item fields; for a version trained before they were written, the
        CATEGORY its ids carry."""
        if self.fields is not None:
            return self.fields
        return ItemFields.of_categories(self.categories)

    def _known_codes(self, items: Iterable[str]) -> set[int]:
        """Codes of every item of `items` the version knows, its catalog's included."""
        codes = {c for c in map(self.item_code, items) if c is not None}
        if self.new_items is not None:
            codes |= {c for c in map(self.new_items.cold_code, items) if c is not None}
        return codes

    def rank(self, history: UserHistory, now_ms: int, items: list[str]) -> list[tuple[str, float]]:
        """The blend's order (with the ranker, where the version has one) of these items,
        best first, with their scores: those the blend scores, then those only trending
        scores; an item the repeat policy holds back, or one nothing scores, is left out."""
        codes = np.array([c for c in map(self.item_code, items) if c is not None], np.int64)
        if not len(codes):
            return []
        allowed = np.zeros(self.n_items, dtype=bool)
        allowed[codes] = True
        return self._ids(self._top(history, now_ms, len(codes), None, allowed))

    def _top(
        self,
        history: UserHistory,
        now_ms: int,
        k: int,
        skip: Ints | None,
        allowed: npt.NDArray[np.bool_] | None,
        blend: Blend | None = None,
    ) -> list[tuple[int, float]]:
        """`recommend_one` with this version's parts (or another blend): (code, score),
        best first."""
        found = recommend_one(
            blend or self.blend,
            self.collab(history),
            history,
            self.trending,
            self._trending_candidates,
            now_ms,
            k,
            skip=skip,
            allowed=allowed,
            ranker=self.ranker,
            stats=None if self.ranker is None else self._item_stats,
        )
        return found

    def _ids(self, found: list[tuple[int, float]]) -> list[tuple[str, float]]:
        """(item id, score) of codes, the catalog's items without events included."""
        cold = None if self.new_items is None else self.new_items.cold_ids
        return [
            (
                str(self.item_ids[code] if code < self.n_items else cold[code - self.n_items]),  # type: ignore[index]
                round(score, 6),
            )
            for code, score in found
        ]

    def _explored(
        self,
        found: list[tuple[int, float]],
        items: Ints,
        weights: Floats,
        k: int,
        skip: Iterable[str] = (),
        allowed: Mask | None = None,
    ) -> list[tuple[int, float]]:
        """A list with the version's exploration share of it given to the young items
        nearest, by attributes, to `items` (weighted), as the batch output has it; `skip`
        (item ids) are never explored, nor items `allowed` (over every code) leaves out."""
        new = self.new_items
        if new is None or new.share <= 0 or not len(new.young):
            return found[:k]
        skipped = self._known_codes(skip)
        young = new.young_for(
            items, weights, self._slots(k) + k, skip={*items.tolist(), *skipped}, allowed=allowed
        )
        return explore(found, young, k, new.share)

    def _slots(self, k: int) -> int:
        """How many of a k-long list's places exploration takes."""
        new = self.new_items
        return 0 if new is None or not len(new.young) else len(explore_slots(k, new.share))

    def by_trending(self, items: list[str]) -> list[tuple[str, float]]:
        """These items in the version's trending order (ties in the order given), with
        their trending scores; items the version does not know are left out."""
        known = [
            (i, c) for i, c in zip(items, map(self.item_code, items), strict=True) if c is not None
        ]
        scores = [float(self.trending[c]) for _, c in known]
        order = sorted(range(len(known)), key=lambda n: -scores[n])
        return [(known[n][0], round(scores[n], 6)) for n in order]

    def left_out(self, history: UserHistory, now_ms: int) -> set[str]:
        """The user's own items that the version's repeat policy keeps from coming back."""
        return {str(i) for i in self.item_ids[held_back(self.blend, history, now_ms)]}

    def own(self, history: UserHistory, *, purchased_only: bool = False) -> set[str]:
        """The items the user touched (or only those they bought), as far back as the
        version's data and since."""
        items = history.items[history.purchased] if purchased_only else history.items
        return {str(i) for i in self.item_ids[items]}

    def popular(
        self,
        k: int,
        *,
        skip: Iterable[str] = (),
        category: str | None = None,
        allowed: Mask | None = None,
    ) -> list[tuple[str, float]]:
        """Trending items, in a category if given and within what a filter lets through
        (`allowed`, over every code), leaving some out: the first k of the version's
        trending order that are not skipped (no pass over the catalogue without a filter)."""
        skipped = {c for c in (self.item_code(i) for i in skip) if c is not None}
        best: list[int] = []
        wanted = k + self._slots(k)
        order = self._trending_order(category)
        if allowed is not None:
            order = order[allowed[order]]
        for code in order[: wanted + len(skipped)].tolist():
            if code not in skipped:
                best.append(code)
                if len(best) == wanted:
                    break
        found = [(i, round(float(self.trending[i]), 6)) for i in best]
        # A shopper with no history explores young items like what is trending.
        top = self._trending_candidates[:TRENDING_PROFILE]
        every = self._allowed(category, allowed)
        explored = self._explored(found, top, self.trending[top], k, skip, every)
        return self._ids(explored)

    def _trending_order(self, category: str | None) -> Ints:
        """Items with a trending score, best first, ties by code (as `top_by_score` orders
        them), in a category if given; once per version and category."""
        orders = self._trending_orders
        if None not in orders:
            orders[None] = top_by_score(self.trending, self.n_items)
        if category in orders:
            return orders[category]
        every = orders[None]
        found: Ints = every[self.categories[every] == category]
        if len(found):  # kept for the version's own categories only, never for any name asked
            orders[category] = found
        return found

    @functools.cached_property
    def _trending_orders(self) -> dict[str | None, Ints]:
        return {}

    def related(
        self, item_id: str, k: int, allowed: Mask | None = None
    ) -> list[tuple[str, float]] | None:
        """The item's strongest similar items (within `allowed`, over every code); None if
        the version does not know it."""
        code = self.item_code(item_id)
        if code is None:
            cold = None if self.new_items is None else self.new_items.cold_code(item_id)
            if cold is None:
                return None
            # An item without events: the items nearest it by attributes.
            found = self.new_items.nearest(cold, self.n_codes if allowed is not None else k)  # type: ignore[union-attr]
            return self._ids([(c, s) for c, s in found if allowed is None or allowed[c]][:k])
        neighbours, weights = self.similar.row(code)
        positive = weights > 0  # EASE keeps negative weights: they mean "not related"
        if allowed is not None:
            positive &= allowed[neighbours]
        neighbours, weights = neighbours[positive], weights[positive]
        order = np.argsort(-weights, kind="stable")[: k + self._slots(k)]
        found = [
            (int(neighbours[i]), round(float(weights[i]), 6))
            for i in order.tolist()
            if neighbours[i] != code
        ]
        one = np.array([code], np.int64)
        return self._ids(self._explored(found, one, np.ones(1, np.float32), k, (), allowed))
