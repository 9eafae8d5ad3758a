"""What the API answers, as plain functions over the live model, the store and recent history.

For a user, in this order:

1. **realtime**: the user has events newer than the live version saw (or no published row,
   or asks for a category or more than the row holds). Their recent history is folded into
   the version's compact artifacts (neighbour spread, or ALS fold-in) at request time.
2. **batch**: the published top-K from the online store, when nothing is newer.
3. **popular**: an unknown user, or one whose history the version cannot score: trending
   items (7-day half-life), in the category if one was asked for.

For an item: its published similar items (**batch**), the version's neighbours when more are
asked for than were published (**realtime**), and trending items for an item the version
does not know (**popular**). Nothing answers "not found" for an unknown id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from ingestion.history import RecentEvent, RecentHistory
from ingestion.lake import Lake
from serving.errors import ModelUnavailable
from serving.model import ServingModel
from serving.store import OnlineStore

Source = Literal["realtime", "batch", "popular"]
SOURCES: Final = ("realtime", "batch", "popular")
#: Recent events folded in per request: enough for a session and then some.
HISTORY_LIMIT: Final = 200


@dataclass(frozen=True)
class Answer:
    """Recommended item ids and scores, where they came from, and which version made them."""

    items: list[tuple[str, float]]
    source: Source
    model_version: str
    #: Set when the answer comes from a service that names its own (Personalize).
    recommendation_id: str | None = None


@dataclass
class LiveModel:
    """The published version, reloaded when the store's pointer moves.

    The pointer is read at most every `check_seconds`, so a busy API costs the store one
    read per interval, not one per request.
    """

    lake: Lake
    store: OnlineStore
    check_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _model: ServingModel | None = field(default=None, init=False)
    _checked: float = field(default=float("-inf"), init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def get(self) -> ServingModel:
        """The live version; raises `ModelUnavailable` when none was published."""
        now = self.clock()
        if now - self._checked >= self.check_seconds:
            with self._lock:
                if now - self._checked >= self.check_seconds:
                    version = self.store.active_version()
                    if version is not None and (
                        self._model is None or self._model.version != version
                    ):
                        self._model = ServingModel.load(self.lake, version)
                    self._checked = now
        if self._model is None:
            raise ModelUnavailable(
                "No model version is published yet: run `recs train` and `recs publish` "
                "(or `make demo`)"
            )
        return self._model


@dataclass
class Recommender:
    """Answers personalized and related requests."""

    live: LiveModel
    store: OnlineStore
    history: RecentHistory
    wall_clock: Callable[[], float] = time.time

    def personalized(
        self,
        user_id: str,
        k: int,
        *,
        exclude: Collection[str] = (),
        category: str | None = None,
        not_purchased: bool = True,
    ) -> Answer:
        """The user's top k, leaving out `exclude` (and purchases), within `category`."""
        model = self.live.get()
        recent = self.history.recent(user_id, limit=HISTORY_LIMIT)
        events = [(e.item_id, e.event_type, e.ts_ms) for e in recent]
        skip = set(exclude)
        if not_purchased:
            skip |= purchased(recent)
        has_news = any(ts > model.last_event_ms for _, _, ts in events)
        if not has_news and category is None:
            row = self.store.recommendations("user", user_id, model.version)
            if row is not None:
                kept = [(i, s) for i, s in zip(*row, strict=True) if i not in skip]
                if len(kept) >= k:
                    return Answer(kept[:k], "batch", model.version)
        codes = _codes(model, skip)
        if events:
            items, weights = model.history_row(events, int(self.wall_clock() * 1000))
            scores = model.personal_scores(items, weights)
            if scores is not None:
                found = model.top(scores, k, codes, category, only_scored=True)
                if found:
                    if len(found) < k:  # a short history: fill up with what is trending
                        taken = codes + _codes(model, [i for i, _ in found])
                        found += model.top(model.trending, k - len(found), taken, category)
                    return Answer(found, "realtime", model.version)
        return Answer(model.top(model.trending, k, codes, category), "popular", model.version)

    def related(self, item_id: str, k: int, *, exclude: Collection[str] = ()) -> Answer:
        """Items related to `item_id`, strongest first."""
        model = self.live.get()
        skip = set(exclude) | {item_id}
        row = self.store.recommendations("item", item_id, model.version)
        if row is not None:
            kept = [(i, s) for i, s in zip(*row, strict=True) if i not in skip]
            if len(kept) >= k:
                return Answer(kept[:k], "batch", model.version)
        found = model.related(item_id, k + len(skip))
        if found:
            return Answer(
                [(i, s) for i, s in found if i not in skip][:k], "realtime", model.version
            )
        codes = _codes(model, skip)
        code = model.item_code(item_id)
        category = None if code is None else str(model.categories[code])
        return Answer(model.top(model.trending, k, codes, category), "popular", model.version)


def purchased(events: Iterable[RecentEvent]) -> set[str]:
    """The items a user bought, among their recent events."""
    return {e.item_id for e in events if e.event_type == "purchase"}


def _codes(model: ServingModel, item_ids: Collection[str]) -> list[int]:
    """The version's codes of the items it knows among `item_ids`."""
    return [c for c in (model.item_code(i) for i in item_ids) if c is not None]
