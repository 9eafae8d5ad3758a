"""A synthetic shop that behaves like a real one, so later stages can be measured on it.

What makes it realistic enough to rank models on:

- Item popularity follows a power law (Zipf over a random ranking), and a new item gets a
  novelty boost that fades over a couple of weeks, so "trending" differs from "popular".
- Every user has latent tastes: a few favourite categories (a sparse Dirichlet draw) and,
  within each category, a favourite "style" (a hidden cluster of items). A share of each
  user's views come from that style, and items in it are carted far more often. Popularity
  alone cannot see this; collaborative filtering can.
- Sessions run view -> add_to_cart -> purchase with drop-off at each step, at realistic
  times of day, with more traffic at weekends.
- The catalog changes: a share of items appears during the window, and no event touches an
  item before the week after it appeared.

Everything is drawn from one seeded numpy Generator, vectorised, so a seed gives the same
shop, and a million events take about a second. `end` anchors the timeline (default: today,
midnight UTC): the same seed and end give byte-identical data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from common.contract import EVENT_TYPES, Event, format_ts, parse_event
from common.lake import Lake
from ingestion.raw import HOUR_MS, RawEventWriter, WriteReport, write_catalog_dump
from ingestion.sinks import EventSink

DAY_MS: Final = 86_400_000
GENERATOR_STREAM: Final = "recs-generator"

_CATEGORY_NAMES: Final = (
    "electronics", "books", "home", "garden", "toys", "beauty", "sports", "grocery",
    "fashion", "shoes", "jewelry", "kitchen", "pets", "automotive", "office", "music",
    "games", "baby", "health", "outdoor", "lighting", "furniture", "tools", "crafts",
)  # fmt: skip
_NOUNS: Final = (
    "Lamp", "Chair", "Kettle", "Novel", "Sneaker", "Jacket", "Backpack", "Blender", "Puzzle",
    "Candle", "Watch", "Speaker", "Mug", "Scarf", "Drill", "Notebook", "Serum", "Leash",
)  # fmt: skip
_ADJECTIVES: Final = (
    "Classic", "Compact", "Deluxe", "Eco", "Everyday", "Nordic", "Pro", "Retro", "Smart",
    "Soft", "Urban", "Vintage", "Wild", "Bold", "Calm", "Bright",
)  # fmt: skip
_BRAND_PARTS: Final = (
    ("Acme", "Bolt", "Cedar", "Dune", "Ember", "Fjord", "Grove", "Harbor", "Iris", "Juniper"),
    ("Works", "Labs", "Co", "Goods", "House", "Supply", "Studio", "Market"),
)
_REGIONS: Final = ("north", "south", "east", "west", "central")
# Relative traffic per hour of day (UTC), a shop's evening peak.
_HOURLY: Final = np.array(
    [2, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 8, 8, 8, 8, 8, 9, 10, 12, 13, 12, 9, 6, 4], dtype=float
)

# Funnel and taste parameters, chosen to resemble public e-commerce logs: a 5-10% view to
# cart rate and about a third of carts bought.
_P_TASTE: Final = 0.65  # share of views drawn from the user's favourite style
_P_GLOBAL: Final = 0.08  # share of views drawn from the whole catalog (bestsellers, ads)
_P_CART_TASTE: Final = 0.20
_P_CART_OTHER: Final = 0.05
_P_PURCHASE: Final = 0.35
_MEAN_VIEW_GAP_MS: Final = 40_000
_STYLE_SIZE: Final = 15  # items per hidden style cluster, on average
_STYLE_POPULARITY_EXPONENT: Final = 0.3
_NOVELTY_BOOST: Final = 6.0
_NOVELTY_DAYS: Final = 10.0

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ShopSpec:
    """The parameters of a synthetic shop. The same spec always gives the same shop."""

    users: int = 5_000
    items: int = 2_000
    categories: int = 20
    days: int = 90
    events: int = 500_000
    seed: int = 42
    end: datetime | None = None
    new_item_share: float = 0.2

    def check(self) -> None:
        """Refuse specs that cannot make a shop, saying which parameter and why."""
        for name in ("users", "items", "categories", "days", "events"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (got {getattr(self, name)})")
        if self.categories > self.items:
            raise ValueError(f"categories ({self.categories}) must not exceed items ({self.items})")
        if not 0 <= self.new_item_share < 1:
            raise ValueError(f"new_item_share must be in [0, 1) (got {self.new_item_share})")
        if self.end is not None and self.end.tzinfo is None:
            raise ValueError("end must carry a time zone (UTC)")

    @property
    def end_time(self) -> datetime:
        """The end of the timeline: `end`, or today at midnight UTC."""
        if self.end is not None:
            return self.end.astimezone(UTC)
        return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Shop:
    """A generated shop: its catalog, its users, and its events as columns sorted by time."""

    spec: ShopSpec
    start_ms: int
    end_ms: int
    item_category: IntArray
    item_style: IntArray
    item_price: FloatArray
    item_brand: IntArray
    item_created_ms: IntArray
    user_region: IntArray
    # events, sorted by ts_ms
    event_id_hex: str  # 32 hex digits an event, concatenated
    user: IntArray
    item: IntArray
    kind: npt.NDArray[np.int8]  # index into EVENT_TYPES
    ts_ms: IntArray
    session: IntArray
    quantity: IntArray

    @property
    def n_events(self) -> int:
        """How many events the shop has."""
        return len(self.ts_ms)

    @property
    def category_names(self) -> list[str]:
        """Category names, index-aligned with `item_category`."""
        return [
            _CATEGORY_NAMES[c] if c < len(_CATEGORY_NAMES) else f"category-{c + 1}"
            for c in range(self.spec.categories)
        ]


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> FloatArray:
    ranks = rng.permutation(n).astype(float) + 1.0
    weights: FloatArray = ranks**-exponent
    return weights


class _GroupSampler:
    """Draws one item from a named group, with probability proportional to weight.

    All groups share one sorted array of cumulative weights offset by the group's index, so
    a million draws from a million different groups are one `searchsorted`.
    """

    def __init__(
        self, group: IntArray, weight: FloatArray, n_groups: int, values: IntArray
    ) -> None:
        order = np.lexsort((np.arange(len(group)), group))
        g = group[order]
        w = weight[order]
        totals = np.bincount(g, weights=w, minlength=n_groups)
        cum = np.cumsum(w)
        starts = np.searchsorted(g, np.arange(n_groups))
        before = np.concatenate([[0.0], cum])[starts]
        with np.errstate(invalid="ignore", divide="ignore"):
            within = (cum - before[g]) / totals[g]
        self._keys = g + np.minimum(within, 1.0 - 1e-12)
        self._values = values[order]
        self.empty = totals <= 0

    def draw(self, groups: IntArray, rng: np.random.Generator) -> IntArray:
        """One value (an item index) per requested group; each group must be non-empty."""
        keys = groups + rng.random(len(groups))
        pos = np.searchsorted(self._keys, keys, side="left")
        picked: IntArray = self._values[np.minimum(pos, len(self._values) - 1)]
        return picked


def _user_styles(
    users: IntArray, cats: IntArray, taste_key: npt.NDArray[np.uint64], n_styles: IntArray
) -> IntArray:
    """Each (user, category) pair's favourite style: a fixed hash of the user's taste key."""
    mixed = (taste_key[users] ^ (cats.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))) * (
        np.uint64(0xBF58476D1CE4E5B9)
    )
    style: IntArray = ((mixed >> np.uint64(29)) % n_styles[cats].astype(np.uint64)).astype(np.int64)
    return style


@dataclass(frozen=True)
class _Catalog:
    """The generated catalog: categories, hidden styles, popularity, prices, creation."""

    category: npt.NDArray[np.int64]
    category_share: npt.NDArray[np.float64]
    styles: npt.NDArray[np.int64]
    style_offset: npt.NDArray[np.int64]
    style: npt.NDArray[np.int64]
    popularity: npt.NDArray[np.float64]
    price: npt.NDArray[np.float64]
    brand: npt.NDArray[np.int64]
    created_ms: npt.NDArray[np.int64]

    @property
    def style_groups(self) -> int:
        return int(self.styles.sum())


def _catalog(spec: ShopSpec, rng: np.random.Generator, start_ms: int) -> _Catalog:
    """Categories of power-law size, items in hidden styles within them; new items appear
    during the window, the rest predate it."""
    n_items, n_cats = spec.items, spec.categories
    cat_p = np.arange(1, n_cats + 1, dtype=float) ** -0.7
    cat_p /= cat_p.sum()
    item_cat = np.concatenate(
        [np.arange(n_cats), rng.choice(n_cats, size=n_items - n_cats, p=cat_p)]
    ).astype(np.int64)
    rng.shuffle(item_cat)
    items_per_cat = np.bincount(item_cat, minlength=n_cats)
    n_styles = np.maximum(1, np.round(items_per_cat / _STYLE_SIZE)).astype(np.int64)
    style_offset = np.concatenate([[0], np.cumsum(n_styles)[:-1]])
    item_style = style_offset[item_cat] + rng.integers(0, n_styles[item_cat])
    popularity = _zipf_weights(n_items, 1.0, rng)
    cat_median_price = np.exp(rng.uniform(np.log(8), np.log(250), n_cats))
    price = np.round(cat_median_price[item_cat] * rng.lognormal(0, 0.5, n_items), 0) - 0.01
    price = np.maximum(price, 0.99)
    brand = rng.integers(0, len(_BRAND_PARTS[0]) * len(_BRAND_PARTS[1]), n_items)
    # The most popular item of each style is always old, so no style is ever empty.
    is_new = rng.random(n_items) < spec.new_item_share
    by_style = np.lexsort((-popularity, item_style))
    style_heads = by_style[np.r_[0, np.flatnonzero(np.diff(item_style[by_style])) + 1]]
    is_new[style_heads] = False
    created = np.where(
        is_new,
        start_ms + rng.integers(0, spec.days * DAY_MS, n_items),
        start_ms - rng.integers(DAY_MS, 365 * DAY_MS, n_items),
    ).astype(np.int64)
    return _Catalog(item_cat, cat_p, n_styles, style_offset, item_style, popularity, price,
                    brand, created)  # fmt: skip


def _samplers(
    spec: ShopSpec, catalog: _Catalog, start_ms: int
) -> tuple[dict[str, _GroupSampler], float, int]:
    """Popularity over time: items are available from the epoch after they appear, with a
    novelty boost that fades. One sampler per grouping, over (epoch, group); and the
    epochs' length and count."""
    n_items, n_cats, n_style_groups = spec.items, spec.categories, catalog.style_groups
    n_epochs = max(1, min(spec.days, 30))
    epoch_ms = spec.days * DAY_MS / n_epochs
    epoch_start = start_ms + (np.arange(n_epochs) * epoch_ms).astype(np.int64)
    age_days = (epoch_start[:, None] - catalog.created_ms[None, :]) / DAY_MS
    weight = np.where(
        age_days >= 0,
        catalog.popularity[None, :]
        * (1 + _NOVELTY_BOOST * np.exp(-np.clip(age_days, 0, None) / _NOVELTY_DAYS)),
        0.0,
    )
    epoch_of_row = np.repeat(np.arange(n_epochs), n_items)
    flat_weight = weight.ravel()
    del age_days, weight
    item_of_row = np.tile(np.arange(n_items), n_epochs)
    samplers = {
        # Within a taste cluster, popularity matters less: fans browse the long tail.
        "style": _GroupSampler(
            epoch_of_row * n_style_groups + catalog.style[item_of_row],
            flat_weight**_STYLE_POPULARITY_EXPONENT,
            n_epochs * n_style_groups,
            item_of_row,
        ),
        "category": _GroupSampler(
            epoch_of_row * n_cats + catalog.category[item_of_row],
            flat_weight,
            n_epochs * n_cats,
            item_of_row,
        ),
        "global": _GroupSampler(epoch_of_row, flat_weight, n_epochs, item_of_row),
    }
    return samplers, epoch_ms, n_epochs


def generate_shop(spec: ShopSpec) -> Shop:
    """Generate a shop from its spec: catalog, users and exactly `spec.events` events."""
    spec.check()
    rng = np.random.default_rng(spec.seed)
    end_ms = int(spec.end_time.timestamp() * 1000)
    start_ms = end_ms - spec.days * DAY_MS
    catalog = _catalog(spec, rng, start_ms)

    # Users: how active they are, and what they like.
    activity = rng.lognormal(0, 1.0, spec.users)
    cat_pref = (
        rng.dirichlet(np.full(spec.categories, 0.3), size=spec.users) * 0.7
        + catalog.category_share * 0.3
    )
    cat_cdf = np.cumsum(cat_pref, axis=1).astype(np.float32)
    taste_key = rng.integers(0, 2**63, spec.users, dtype=np.int64).astype(np.uint64)
    region = rng.integers(0, len(_REGIONS), spec.users)
    samplers, epoch_ms, n_epochs = _samplers(spec, catalog, start_ms)

    mean_views = 1 / 0.35
    per_session = mean_views * (1 + (_P_TASTE * _P_CART_TASTE + 0.4 * _P_CART_OTHER) * 1.35)
    n_sessions = max(1, math.ceil(spec.events / per_session * 1.1))
    while True:
        columns = _sessions(
            rng,
            n_sessions,
            spec=spec,
            start_ms=start_ms,
            end_ms=end_ms,
            activity=activity,
            cat_cdf=cat_cdf,
            taste_key=taste_key,
            n_styles=catalog.styles,
            style_offset=catalog.style_offset,
            item_style=catalog.style,
            epoch_ms=epoch_ms,
            n_epochs=n_epochs,
            n_style_groups=catalog.style_groups,
            samplers=samplers,
        )
        if len(columns["ts"]) >= spec.events:
            break
        n_sessions = math.ceil(n_sessions * 1.3)

    # Keep exactly `events` rows: whole sessions in random order, and the first rows of the
    # last one (its views come before its carts and purchases, so no funnel is broken).
    keep = np.lexsort((columns["ts"], columns["kind"], columns["session"]))[: spec.events]
    by_time = keep[np.argsort(columns["ts"][keep], kind="stable")]
    ids = rng.integers(0, 256, size=(spec.events, 16), dtype=np.uint8)
    ids[:, 6] = (ids[:, 6] & 0x0F) | 0x40  # UUID version 4
    ids[:, 8] = (ids[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    return Shop(
        spec=spec,
        start_ms=start_ms,
        end_ms=end_ms,
        item_category=catalog.category,
        item_style=catalog.style,
        item_price=catalog.price,
        item_brand=catalog.brand,
        item_created_ms=catalog.created_ms,
        user_region=region,
        event_id_hex=ids.tobytes().hex(),
        user=columns["user"][by_time],
        item=columns["item"][by_time],
        kind=columns["kind"][by_time].astype(np.int8),
        ts_ms=columns["ts"][by_time],
        session=columns["session"][by_time],
        quantity=columns["quantity"][by_time],
    )


def _sessions(
    rng: np.random.Generator,
    n_sessions: int,
    *,
    spec: ShopSpec,
    start_ms: int,
    end_ms: int,
    activity: FloatArray,
    cat_cdf: npt.NDArray[np.float32],
    taste_key: npt.NDArray[np.uint64],
    n_styles: IntArray,
    style_offset: IntArray,
    item_style: IntArray,
    epoch_ms: float,
    n_epochs: int,
    n_style_groups: int,
    samplers: dict[str, _GroupSampler],
) -> dict[str, Any]:
    user_cdf = np.cumsum(activity) / activity.sum()
    s_user = np.minimum(np.searchsorted(user_cdf, rng.random(n_sessions)), len(activity) - 1)
    day_w = 1 + 0.3 * np.arange(spec.days) / spec.days
    weekday = (start_ms // DAY_MS + np.arange(spec.days) + 3) % 7  # 1970-01-01 was a Thursday
    day_w = day_w * np.where(weekday >= 5, 1.2, 1.0)
    s_day = rng.choice(spec.days, size=n_sessions, p=day_w / day_w.sum())
    s_hour = rng.choice(24, size=n_sessions, p=_HOURLY / _HOURLY.sum())
    s_start = start_ms + s_day * DAY_MS + s_hour * HOUR_MS + rng.integers(0, HOUR_MS, n_sessions)
    s_cat = np.empty(n_sessions, dtype=np.int64)
    for lo in range(0, n_sessions, 100_000):
        hi = min(lo + 100_000, n_sessions)
        r = rng.random(hi - lo, dtype=np.float32)[:, None]
        s_cat[lo:hi] = np.minimum((cat_cdf[s_user[lo:hi]] < r).sum(axis=1), cat_cdf.shape[1] - 1)
    s_style: IntArray = style_offset[s_cat] + _user_styles(s_user, s_cat, taste_key, n_styles)
    s_epoch = np.minimum((s_start - start_ms) // epoch_ms, n_epochs - 1).astype(np.int64)

    n_views = rng.geometric(0.35, n_sessions)
    v_sess = np.repeat(np.arange(n_sessions), n_views)
    n_v = len(v_sess)
    how = rng.random(n_v)
    v_item = np.empty(n_v, dtype=np.int64)
    for name, mask, group in (
        ("style", how < _P_TASTE, s_epoch * n_style_groups + s_style),
        ("category", (how >= _P_TASTE) & (how < 1 - _P_GLOBAL), s_epoch * len(n_styles) + s_cat),
        ("global", how >= 1 - _P_GLOBAL, s_epoch),
    ):
        v_item[mask] = samplers[name].draw(group[v_sess[mask]], rng)
    gaps = rng.exponential(_MEAN_VIEW_GAP_MS, n_v)
    cum = np.cumsum(gaps)
    first = np.concatenate([[0], np.cumsum(n_views)[:-1]])
    v_ts = s_start[v_sess] + (cum - cum[first][np.repeat(np.arange(n_sessions), n_views)]).astype(
        np.int64
    )

    in_taste = item_style[v_item] == s_style[v_sess]
    carted = rng.random(n_v) < np.where(in_taste, _P_CART_TASTE, _P_CART_OTHER)
    c_idx = np.flatnonzero(carted)
    c_ts = v_ts[c_idx] + rng.exponential(15_000, len(c_idx)).astype(np.int64)
    c_qty = rng.choice([1, 2, 3], size=len(c_idx), p=[0.85, 0.1, 0.05])
    bought = rng.random(len(c_idx)) < _P_PURCHASE
    p_idx = c_idx[bought]
    p_ts = c_ts[bought] + rng.exponential(90_000, len(p_idx)).astype(np.int64)

    session = np.concatenate([v_sess, v_sess[c_idx], v_sess[p_idx]])
    ts = np.concatenate([v_ts, c_ts, p_ts])
    keep = ts < end_ms
    return {
        "session": session[keep],
        "user": s_user[session][keep],
        "item": np.concatenate([v_item, v_item[c_idx], v_item[p_idx]])[keep],
        "kind": np.repeat([0, 1, 2], [n_v, len(c_idx), len(p_idx)])[keep],
        "ts": ts[keep],
        "quantity": np.concatenate([np.zeros(n_v, np.int64), c_qty, c_qty[bought]])[keep],
    }


def item_records(shop: Shop) -> Iterator[dict[str, Any]]:
    """The catalog, as raw catalog records (the `Item` contract)."""
    names = shop.category_names
    firsts, seconds = _BRAND_PARTS
    for i in range(shop.spec.items):
        b = int(shop.item_brand[i])
        brand = f"{firsts[b % len(firsts)]} {seconds[b // len(firsts) % len(seconds)]}"
        noun = _NOUNS[(i * 7 + int(shop.item_category[i])) % len(_NOUNS)]
        adjective = _ADJECTIVES[int(shop.item_style[i]) % len(_ADJECTIVES)]
        created = datetime.fromtimestamp(int(shop.item_created_ms[i]) / 1000, UTC)
        yield {
            "item_id": f"I{i + 1}",
            "title": f"{brand} {adjective} {noun} {i + 1}",
            "category": names[int(shop.item_category[i])],
            "price": float(shop.item_price[i]),
            "brand": brand,
            "created_at": format_ts(created),
            "attributes": {},
        }


def user_records(shop: Shop) -> Iterator[dict[str, Any]]:
    """The users, as raw catalog records (the `User` contract)."""
    for u in range(shop.spec.users):
        yield {"user_id": f"U{u + 1}", "attributes": {"region": _REGIONS[shop.user_region[u]]}}


def event_lines(shop: Shop, start: int, stop: int) -> list[str]:
    """Events [start, stop) as raw-zone JSON lines, built without per-event dicts."""
    hexes = shop.event_id_hex[start * 32 : stop * 32]
    ts = np.datetime_as_string(shop.ts_ms[start:stop].astype("datetime64[ms]"), unit="ms")
    users = shop.user[start:stop].tolist()
    items = shop.item[start:stop].tolist()
    kinds = shop.kind[start:stop].tolist()
    sessions = shop.session[start:stop].tolist()
    quantities = shop.quantity[start:stop].tolist()
    prices = shop.item_price.tolist()
    lines = []
    for n, (u, i, k, t, s, q) in enumerate(
        zip(users, items, kinds, ts.tolist(), sessions, quantities, strict=True)
    ):
        h = hexes[n * 32 : n * 32 + 32]
        head = (
            f'{{"event_id":"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",'
            f'"user_id":"U{u + 1}","item_id":"I{i + 1}","event_type":"{EVENT_TYPES[k]}",'
            f'"ts":"{t}Z","session_id":"S{s + 1}"'
        )
        lines.append(f'{head},"price":{prices[i]},"quantity":{q}}}' if k else head + "}")
    return lines


def write_raw(
    shop: Shop,
    lake: Lake,
    *,
    until_ms: int | None = None,
    progress: Callable[[int], None] | None = None,
    compresslevel: int | None = None,
) -> WriteReport:
    """Write events before `until_ms` (default: all) straight to the raw zone, by event hour.

    Object names derive from the spec, so writing the same shop again replaces its objects.
    """
    stop = shop.n_events if until_ms is None else int(np.searchsorted(shop.ts_ms, until_ms))
    spec = shop.spec
    run_key = (
        f"{spec.seed}/{spec.users}/{spec.items}/{spec.categories}/{spec.days}/{spec.events}/"
        f"{shop.end_ms}"
    )
    options = {} if compresslevel is None else {"compresslevel": compresslevel}
    with RawEventWriter(lake, stream=GENERATOR_STREAM, run_key=run_key, **options) as writer:
        hours = shop.ts_ms[:stop] // HOUR_MS
        bounds = np.flatnonzero(np.diff(hours)) + 1
        edges = [0, *bounds.tolist(), stop] if stop else [0]
        for lo, hi in itertools.pairwise(edges):
            hour_ms = int(hours[lo]) * HOUR_MS
            writer.add(hour_ms, event_lines(shop, lo, hi))
            writer.complete(hour_ms)
            if progress:
                progress(hi - lo)
    return writer.report


def write_catalog(shop: Shop, lake: Lake) -> str:
    """Write the shop's catalog dump, as of the end of its timeline."""
    dumped_at = datetime.fromtimestamp(shop.end_ms / 1000, UTC)
    return write_catalog_dump(lake, dumped_at, items=item_records(shop), users=user_records(shop))


def send_to_sink(
    shop: Shop,
    sink: EventSink,
    *,
    since_ms: int,
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send events from `since_ms` on through a sink, validated like any producer's."""
    start = int(np.searchsorted(shop.ts_ms, since_ms))
    sent = 0
    for lo in range(start, shop.n_events, batch):
        hi = min(lo + batch, shop.n_events)
        events: list[Event] = [parse_event(line) for line in event_lines(shop, lo, hi)]
        sink.put(events)
        sent += len(events)
        if progress:
            progress(len(events))
    return sent
