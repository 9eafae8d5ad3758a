"""What the API answers, as plain functions over the live model, the store and recent history.

A user is answered from their whole profile: the history the live version trained on, with
any newer events (from the recent-history store) folded in. In this order:

1. **batch**: nothing newer than the version's data, no category: the published top-K from
   the online store, which training computed from the same profile with the same blend.

In every path, what the user has in the cart (added, and not bought since, among their
recent events) is left out: it is there already.
2. **realtime**: the user has newer events (or asks for a category, or for more than the
   published row holds): the blend of `training.blend`, scored now over the profile with the
   new events added (`training.published`). The version's repeat policy applies as in batch,
   to purchases from before the recent log as well.
3. **popular**: a user the version has never seen, or whose profile scores nothing:
   trending items, leaving out what the repeat policy leaves out, in the category if asked.

For an item: its published similar items (**batch**), the version's neighbours when more are
asked for than were published (**realtime**), and trending items for an item the version
does not know (**popular**). Nothing answers "not found" for an unknown id.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from botocore.exceptions import BotoCoreError, ClientError

from common.filters import BoundFilter, NamedFilter
from common.lake import Lake
from ingestion.history import RecentEvent, RecentHistory
from serving.errors import ModelUnavailable
from serving.experiment import Experiment
from serving.store import OnlineStore
from training.blend import UserHistory
from training.errors import ModelUnreadable
from training.item_fields import Mask
from training.profiles import profile_history
from training.published import PublishedModel, Users

Source = Literal["realtime", "batch", "popular", "personalize"]
SOURCES: Final = ("realtime", "batch", "popular", "personalize")
#: Recent events folded in per request: enough for a session and then some.
HISTORY_LIMIT: Final = 200

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Named:
    """A named filter a request asked for, with its values bound."""

    name: str
    spec: NamedFilter
    #: The request's filterValues, as given (a campaign takes them as they are).
    values: Mapping[str, str]
    bound: BoundFilter

    @classmethod
    def of(cls, name: str, spec: NamedFilter, values: Mapping[str, str]) -> Named:
        """`FilterValueError` when the values do not fit the filter."""
        return cls(name, spec, dict(values), spec.bind(values))


@dataclass(frozen=True)
class Ranking:
    """A shop's list re-ordered for a user; None scores the items the model could not."""

    items: list[tuple[str, float | None]]
    source: Source
    model_version: str
    recommendation_id: str | None = None


@dataclass(frozen=True)
class Answer:
    """Recommended item ids and scores, where they came from, and which version made them."""

    items: list[tuple[str, float]]
    source: Source
    model_version: str
    #: Set when the answer comes from a service that names its own (Personalize).
    recommendation_id: str | None = None


def in_cart(recent: Collection[RecentEvent]) -> set[str]:
    """The items of some recent events added to the cart and not bought since."""
    carted: dict[str, int] = {}
    bought: dict[str, int] = {}
    for event in recent:
        if event.event_type == "add_to_cart":
            carted[event.item_id] = max(carted.get(event.item_id, 0), event.ts_ms)
        elif event.event_type == "purchase":
            bought[event.item_id] = max(bought.get(event.item_id, 0), event.ts_ms)
    return {item for item, ts in carted.items() if bought.get(item, -1) < ts}


def _kept(
    model: PublishedModel,
    row: tuple[list[str], list[float]],
    skip: Collection[str],
    allowed: Mask | None,
) -> list[tuple[str, float]]:
    """A published row's (item, score) less `skip` and what a filter's `allowed` drops."""
    ids, scores = row
    passes = [True] * len(ids) if allowed is None else model.allowed_ids(allowed, ids)
    return [(i, s) for i, s, ok in zip(ids, scores, passes, strict=True) if ok and i not in skip]


def newer(
    recent: Collection[RecentEvent], last_event_ms: int
) -> tuple[list[tuple[str, str, int]], int]:
    """The recent events newer than a version's data, as (item id, event type, ts_ms), and
    "now": the newest event known, as in training, so that a user's own items age the same
    way in every path."""
    news = [(e.item_id, e.event_type, e.ts_ms) for e in recent if e.ts_ms > last_event_ms]
    return news, max([last_event_ms, *(ts for _, _, ts in news)])


@dataclass(frozen=True)
class LoadFailure:
    """A published version this worker could not load, and when it tries again."""

    version: str
    error: str
    attempts: int
    #: Wall-clock seconds of the first failed attempt.
    since: float
    #: Monotonic seconds of the next attempt.
    retry_at: float


@dataclass
class LiveModel:
    """The published version, reloaded when the store's pointer moves.

    The pointer is read at most every `check_seconds`, so a busy API costs the store one
    read per interval, not one per request. A version that cannot be loaded (a missing or
    damaged file, a lake that does not answer) never takes the API down: the version already
    loaded keeps answering, the failure is logged and shown by `/v1/health` (`failure`), and
    the load is tried again after 1, 2, 4 ... seconds, at most `retry_max_seconds` apart.
    """

    lake: Lake
    store: OnlineStore
    check_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    retry_first_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    #: Where users' trained histories are read (RECS_MODEL_USERS): the version's files, or
    #: the store's profile rows, so that a version of millions of users fits a Lambda.
    users: Users = "lake"
    #: Which pointer it follows: the live one, or the running experiment's candidate (then
    #: it holds no model while no experiment runs, and never raises for it).
    arm: Literal["live", "candidate"] = "live"
    #: The running experiment, as last read (a candidate's only).
    experiment: Experiment | None = field(default=None, init=False)
    _model: PublishedModel | None = field(default=None, init=False)
    _next_check: float = field(default=float("-inf"), init=False)
    _failure: LoadFailure | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @property
    def loaded(self) -> str | None:
        """The version this worker has loaded, if any."""
        return None if self._model is None else self._model.version

    @property
    def failure(self) -> LoadFailure | None:
        """The published version that could not be loaded, while it cannot."""
        return self._failure

    def current(self) -> PublishedModel | None:
        """The version it follows, if one is loaded (the pointer read again when due)."""
        now = self.clock()
        if now >= self._next_check:
            with self._lock:
                if now >= self._next_check:
                    self._refresh(now)
        return self._model

    def get(self) -> PublishedModel:
        """The live version; raises `ModelUnavailable` when none was published or loaded."""
        self.current()
        now = self.clock()
        if self._model is None:
            failure = self._failure
            if failure is not None:
                raise ModelUnavailable(
                    f"Model version {failure.version} is published but cannot be loaded: "
                    f"{failure.error}. Retrying in "
                    f"{max(0.0, failure.retry_at - now):.0f} s"
                )
            raise ModelUnavailable(
                "No model version is published yet: run `recs train` and `recs publish` "
                "(or `make demo`)"
            )
        return self._model

    def _pointed(self) -> str | None:
        """The version the followed pointer names."""
        if self.arm == "live":
            return self.store.active_version()
        try:
            found = self.store.experiment()
            self.experiment = None if found is None else Experiment.of(found)
        except ValueError as exc:
            logger.error("the store's experiment is unreadable, so nobody gets its arm: %s", exc)
            self.experiment = None
        if self.experiment is None:
            self._model = None  # the experiment stopped: its candidate is let go
        return None if self.experiment is None else self.experiment.candidate

    def _refresh(self, now: float) -> None:
        version = self._pointed()
        self._next_check = now + self.check_seconds
        if version is None or (self._model is not None and self._model.version == version):
            self._failure = None
            return
        failure = self._failure
        if failure is not None and failure.version == version and now < failure.retry_at:
            self._next_check = min(self._next_check, failure.retry_at)
            return
        try:
            model = PublishedModel.load(self.lake, version, self.users)
        except (ModelUnreadable, BotoCoreError, ClientError) as exc:
            self._failed(version, exc, now)
            return
        model.warm()  # before it answers anyone: no request pays for the version's set-up
        if failure is not None:
            logger.warning(
                "loaded model version %s after %d failed attempts", version, failure.attempts
            )
        self._model, self._failure = model, None

    def _failed(self, version: str, exc: Exception, now: float) -> None:
        before = self._failure if self._failure and self._failure.version == version else None
        attempts = 1 if before is None else before.attempts + 1
        delay = min(self.retry_max_seconds, self.retry_first_seconds * 2 ** (attempts - 1))
        self._failure = LoadFailure(
            version=version,
            error=str(exc),
            attempts=attempts,
            since=self.wall_clock() if before is None else before.since,
            retry_at=now + delay,
        )
        self._next_check = min(self._next_check, now + delay)
        serving = self._model.version if self._model else "nothing (503s until it loads)"
        if self.arm == "candidate":
            serving = "the live version to every shopper of the experiment"
        logger.error(
            "model version %s cannot be loaded (attempt %d): %s; serving %s; next attempt in "
            "%.0f s",
            version,
            attempts,
            exc,
            serving,
            delay,
        )


@dataclass
class Recommender:
    """Answers personalized and related requests."""

    live: LiveModel
    store: OnlineStore
    history: RecentHistory
    wall_clock: Callable[[], float] = time.time
    #: Leave out of "recommended for you" what the user has in the cart and has not bought
    #: since: offering back what they just added helps nobody.
    hide_carted: bool = True
    #: The shop's named filters (RECS_FILTERS, `[filters.NAME]`), which requests name.
    filters: Mapping[str, NamedFilter] = field(default_factory=dict)
    #: The running experiment's candidate (`LiveModel(arm="candidate")`), which answers its
    #: share of shoppers; None: everyone gets the live version.
    candidate: LiveModel | None = None

    def model_for(self, user_id: str | None) -> PublishedModel:
        """The version that answers this shopper: the experiment's candidate for its share of
        them, while it runs and is loaded, else the live one (also for a request with no
        user). A candidate that cannot be loaded leaves everyone on the live version."""
        live = self.live.get()
        if self.candidate is None or user_id is None:
            return live
        model, experiment = self.candidate.current(), self.candidate.experiment
        if model is None or experiment is None or model.version != experiment.candidate:
            return live  # none runs, or its candidate is not loaded (yet, or at all)
        return model if experiment.assigned(user_id) else live

    def personalized(
        self,
        user_id: str,
        k: int,
        *,
        exclude: Collection[str] = (),
        category: str | None = None,
        not_purchased: bool = False,
        not_seen: bool = False,
        named: Named | None = None,
    ) -> Answer:
        """The user's top k, leaving out `exclude` (and, with `not_purchased`, everything the
        user bought, or with `not_seen`, everything the user touched, whatever the version's
        repeat policy), within `category` and what the `named` filter lets through."""
        model = self.model_for(user_id)
        recent = self.history.recent(user_id, limit=HISTORY_LIMIT)
        news, now_ms = newer(recent, model.last_event_ms)
        skip = set(exclude) | (in_cart(recent) if self.hide_carted else set())
        trained = functools.cache(lambda: self._trained(model, user_id))  # one store read
        own_items = named is not None and named.bound.source.includes_own_items
        if not news and category is None and not own_items:
            row = self.store.recommendations("user", user_id, model.version)
            if row is not None:
                reads = named is not None and named.bound.source.reads_interactions
                own = (
                    model.user_history(user_id, (), trained())
                    if not_purchased or not_seen or reads
                    else None
                )
                if own is not None and (not_purchased or not_seen):
                    skip |= model.own(own, purchased_only=not not_seen)
                allowed = None
                if named is not None:
                    allowed = model.selection(named.bound, own, model.last_event_ms)
                kept = _kept(model, row, skip, allowed)
                if len(kept) >= k:
                    return Answer(kept[:k], "batch", model.version)
        profile = model.user_history(user_id, news, trained())
        if not_purchased or not_seen:
            skip |= model.own(profile, purchased_only=not not_seen)
        allowed = None if named is None else model.selection(named.bound, profile, now_ms)
        left_out = skip | (set() if own_items else model.left_out(profile, now_ms))
        if len(profile.items):
            found = model.recommend(
                profile,
                now_ms,
                k,
                skip=skip,
                category=category,
                allowed=allowed,
                own_items=own_items,
            )
            if found:
                return Answer(found, "realtime", model.version)
        popular = model.popular(k, skip=left_out, category=category, allowed=allowed)
        return Answer(popular, "popular", model.version)

    def ranking(self, user_id: str, items: list[str], *, named: Named | None = None) -> Ranking:
        """`items` re-ordered for the user, every one of them (but those the `named` filter
        drops): those the model scores first, best first, then the rest in the order given
        (score None). A user the model cannot score gets the items in trending order (source
        popular)."""
        model = self.model_for(user_id)
        profile, now_ms = self._profile(model, user_id)
        if named is not None:
            allowed = model.selection(named.bound, profile, now_ms)
            # An item the version does not know has no fields: only an INCLUDE can drop it.
            unknown_pass = not any(e.include for e in named.bound.expressions)
            items = [
                i
                for i in items
                if model.allows(allowed, i) or (unknown_pass and model.any_code(i) is None)
            ]
        source: Source = "popular"
        scored: list[tuple[str, float]] = []
        if len(profile.items):
            scored, source = model.rank(profile, now_ms, items), "realtime"
        if not scored:
            scored, source = model.by_trending(items), "popular"
        placed = {item for item, _ in scored}
        rest: list[tuple[str, float | None]] = [(i, None) for i in items if i not in placed]
        return Ranking([*scored, *rest], source, model.version)

    def _profile(self, model: PublishedModel, user_id: str) -> tuple[UserHistory, int]:
        """The user's whole history (trained, with their newer events folded in) and "now"."""
        news, now_ms = newer(self.history.recent(user_id, limit=HISTORY_LIMIT), model.last_event_ms)
        return model.user_history(user_id, news, self._trained(model, user_id)), now_ms

    def _trained(self, model: PublishedModel, user_id: str) -> tuple[UserHistory, int] | None:
        """The user's trained history from the store's profile row, for a version loaded
        without its users' (None otherwise: the version has it)."""
        if model.users != "store":
            return None
        row = self.store.recommendations("profile", user_id, model.version)
        if row is None:
            return UserHistory.empty(), 0
        return profile_history(row[0], row[1], model.item_code)

    def related(
        self,
        item_id: str,
        k: int,
        *,
        exclude: Collection[str] = (),
        named: Named | None = None,
        user_id: str | None = None,
    ) -> Answer:
        """Items related to `item_id`, strongest first, within what the `named` filter lets
        through (its interactions those of `user_id`, with their newest events, if given)."""
        model = self.model_for(user_id)
        skip = set(exclude) | {item_id}
        allowed = None
        if named is not None:
            profile, now_ms = None, model.last_event_ms
            if user_id is not None and named.bound.source.reads_interactions:
                profile, now_ms = self._profile(model, user_id)
            allowed = model.selection(named.bound, profile, now_ms, current=item_id)
        row = self.store.recommendations("item", item_id, model.version)
        if row is not None:
            kept = _kept(model, row, skip, allowed)
            if len(kept) >= k:
                return Answer(kept[:k], "batch", model.version)
        found = model.related(item_id, k + len(skip), allowed)
        if found:
            return Answer(
                [(i, s) for i, s in found if i not in skip][:k], "realtime", model.version
            )
        code = model.item_code(item_id)
        category = None if code is None else str(model.categories[code])
        popular = model.popular(k, skip=skip, category=category, allowed=allowed)
        return Answer(popular, "popular", model.version)
