"""Items scored from their attributes, so that a new item is recommended before it has events
(`training.new_items` is what serving loads; this is how training fits it).

- Each catalog item becomes five groups of sparse features, each row L2-normalized:
  category (its path's parts), brand, price band (ten bands of the catalog's log prices, a
  band half-similar to its neighbours), title words (TF-IDF, scikit-learn's vectorizer) and
  the catalog's other attributes (`key=value`, lists split on `|`).
- The groups' weights are learned from items that have events: for sampled items, their
  strongest co-touched items and random others, non-negative least squares fits the
  shoppers' cosine (who touched one also touched the other) on each group's cosine.
- The weighted groups side by side are the item's vector: two items' dot product is the
  weighted sum of their groups' cosines.
- The exploration share is chosen on the holdout: the served lists with a share of their
  slots given to young items, against the same lists without, per user; a share serves
  only where its gain is beyond the noise (the lower end of its 95% interval above 0).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import nnls
from sklearn.feature_extraction.text import TfidfVectorizer

from common.filters import NUMERIC_FIELDS
from common.lake import Lake
from etl.errors import CuratedZoneEmpty
from etl.sql import connect, reading_curated
from training.item_fields import ItemFields, categorical
from training.metrics import paired, user_ndcg
from training.new_items import NewItems, Vectors, explore, explore_slots
from training.tuning import SELECT_CUTOFF

GROUPS: Final = ("category", "brand", "price", "title", "attributes")
#: Days an item stays young (Personalize's explorationItemAgeCutOff defaults to 30 too).
AGE_DAYS: Final = 30.0
#: Exploration shares tried on the holdout, beside none.
SHARES: Final = (0.1, 0.2, 0.3)
PRICE_BANDS: Final = 10
#: Items sampled to learn the groups' weights, and pairs per item of each kind.
ANCHORS: Final = 2000
PAIRS: Final = 10
DAY_MS: Final = 86_400_000
_SPLIT: Final = re.compile(r"\s*(?:\||>|/|;)\s*")
_WORD: Final = r"(?u)\b[^\W\d_]{2,}\b"


@dataclass(frozen=True)
class Catalog:
    """The curated items table as columns, sorted by item id."""

    item_ids: npt.NDArray[np.str_]
    title: list[str | None]
    category: list[str | None]
    brand: list[str | None]
    price: npt.NDArray[np.float64]
    attributes: list[str]
    #: When the shop created the item, where it says; else when a dump first listed it.
    listed_ms: npt.NDArray[np.int64]
    created: npt.NDArray[np.bool_]
    active: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.item_ids)

    @functools.cached_property
    def features(self) -> dict[str, sp.csr_matrix]:
        """`group_features` of this catalog: the same for the holdout's fit and the final
        one, so computed once."""
        return group_features(self)

    def rows(self, item_ids: npt.NDArray[np.str_]) -> npt.NDArray[np.int64]:
        """Each id's row, -1 where the catalog does not list it."""
        if not len(self):
            return np.full(len(item_ids), -1, np.int64)
        position = np.minimum(np.searchsorted(self.item_ids, item_ids), len(self) - 1)
        found = self.item_ids[position] == item_ids
        return np.where(found, position, -1).astype(np.int64)


def read_catalog(lake: Lake) -> Catalog:
    """Every catalog item, from the curated items table (none before a catalog is imported)."""
    try:
        con = connect(lake)
    except CuratedZoneEmpty:
        return _catalog([])
    if "items" not in {row[0] for row in con.execute("SHOW TABLES").fetchall()}:
        return _catalog([])
    with reading_curated(lake):
        rows = con.execute(
            "SELECT item_id, title, category, brand, price, attributes, "
            "epoch_ms(coalesce(created_at, first_seen_at)), created_at IS NOT NULL, active "
            "FROM items ORDER BY item_id"
        ).fetchall()
    return _catalog(rows)


def _catalog(rows: list[tuple[Any, ...]]) -> Catalog:
    columns = list(zip(*rows, strict=True)) if rows else [()] * 9
    return Catalog(
        item_ids=np.array(columns[0], dtype=str),
        title=list(columns[1]),
        category=list(columns[2]),
        brand=list(columns[3]),
        price=np.array([np.nan if p is None else p for p in columns[4]], np.float64),
        attributes=[a or "{}" for a in columns[5]],
        listed_ms=np.array(columns[6], np.int64),
        created=np.array(columns[7], bool),
        active=np.array(columns[8], bool),
    )


def _category_parts(value: str | None) -> list[str]:
    if not value:
        return []
    parts = [p.lower() for p in _SPLIT.split(value) if p]
    return [value.lower(), *parts] if len(parts) > 1 else parts


def _attribute_tokens(value: str) -> list[str]:
    try:
        found = json.loads(value)
    except json.JSONDecodeError:
        return []
    tokens: list[str] = []
    for key, raw in found.items() if isinstance(found, dict) else ():
        if isinstance(raw, bool) or not isinstance(raw, str):
            continue  # numbers say nothing on their own here; the price band does
        text = raw.strip().lower()
        if _number(text):
            continue
        if len(text) <= 64:
            tokens += [f"{key}={part}" for part in _SPLIT.split(text) if part]
        else:
            tokens += [f"{key}:{word}" for word in re.findall(_WORD, text)]
    return tokens


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _tokens_matrix(documents: list[list[str]]) -> sp.csr_matrix:
    """Tokens per item as TF-IDF rows (L2-normalized); zero rows where an item has none."""
    if not any(documents):
        return sp.csr_matrix((len(documents), 0), dtype=np.float32)
    vectorizer = TfidfVectorizer(analyzer=_as_is, sublinear_tf=True, dtype=np.float32)
    return sp.csr_matrix(vectorizer.fit_transform(documents))


def _as_is(tokens: list[str]) -> list[str]:
    return tokens


def price_bands(price: npt.NDArray[np.float64]) -> sp.csr_matrix:
    """Each priced item's band among the catalog's log prices (deciles), with half weight on
    the bands either side, L2-normalized; zero rows for items without a price."""
    priced = np.isfinite(price) & (price > 0)
    n = len(price)
    if priced.sum() < PRICE_BANDS:
        return sp.csr_matrix((n, 0), dtype=np.float32)
    logs = np.log(price[priced])
    edges = np.quantile(logs, np.linspace(0, 1, PRICE_BANDS + 1)[1:-1])
    band = np.searchsorted(edges, logs, side="right")
    rows = np.flatnonzero(priced)
    entries = [(rows, band, 1.0), (rows, band - 1, 0.5), (rows, band + 1, 0.5)]
    r = np.concatenate([e[0] for e in entries])
    c = np.concatenate([e[1] for e in entries])
    v = np.concatenate([np.full(len(e[0]), e[2]) for e in entries])
    inside = (c >= 0) & (c < PRICE_BANDS)
    matrix = sp.csr_matrix((v[inside], (r[inside], c[inside])), shape=(n, PRICE_BANDS))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(np.where(norms > 0, 1 / np.maximum(norms, 1e-12), 0)) @ matrix)


def group_features(catalog: Catalog) -> dict[str, sp.csr_matrix]:
    """Each attribute group's features for every catalog row (rows L2-normalized)."""
    words = TfidfVectorizer(
        token_pattern=_WORD, lowercase=True, sublinear_tf=True, min_df=2, dtype=np.float32
    )
    titles = [t or "" for t in catalog.title]
    try:
        title = sp.csr_matrix(words.fit_transform(titles))
    except ValueError:  # no word in two titles: nothing to compare
        title = sp.csr_matrix((len(catalog), 0), dtype=np.float32)
    return {
        "category": _tokens_matrix([_category_parts(c) for c in catalog.category]),
        "brand": _tokens_matrix([[b.lower()] if b else [] for b in catalog.brand]),
        "price": price_bands(catalog.price),
        "title": title,
        "attributes": _tokens_matrix([_attribute_tokens(a) for a in catalog.attributes]),
    }


def _pair_cosines(
    matrix: sp.csr_matrix, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Row a[i] . row b[i] for each pair (rows are L2-normalized, so cosines)."""
    if matrix.shape[1] == 0:
        return np.zeros(len(a))
    return np.asarray(matrix[a].multiply(matrix[b]).sum(axis=1)).ravel()


def learn_weights(
    groups: dict[str, sp.csr_matrix],
    rows: npt.NDArray[np.int64],
    touched: sp.csr_matrix,
    seed: int = 42,
) -> dict[str, float]:
    """Each group's weight (summing to 1), fitted on items with events: the shoppers' cosine
    of item pairs (each sampled item's strongest co-touched items, and random ones) on each
    group's cosine, by non-negative least squares. `rows` is each item code's catalog row
    (-1: not listed); `touched` is users x items. Equal weights where nothing fits."""
    items_users = (touched.T.tocsr() > 0).astype(np.float32)
    shoppers = np.asarray(items_users.sum(axis=1)).ravel()
    warm = np.flatnonzero((rows >= 0) & (shoppers >= 2))
    present = [g for g in GROUPS if groups[g].shape[1] > 0]
    if len(warm) < 10 or not present:
        return {g: (1 / len(present) if g in present else 0.0) for g in GROUPS} if present else {}
    rng = np.random.default_rng(seed)
    anchors = rng.choice(warm, size=min(ANCHORS, len(warm)), replace=False)
    co = (items_users[anchors] @ items_users.T).tocsr()
    firsts, seconds, targets = [], [], []
    is_warm = np.zeros(len(rows), bool)
    is_warm[warm] = True
    for n, anchor in enumerate(anchors.tolist()):
        start, stop = co.indptr[n], co.indptr[n + 1]
        others, counts = co.indices[start:stop], co.data[start:stop]
        keep = (others != anchor) & is_warm[others]
        others, counts = others[keep], counts[keep]
        top = others[np.argsort(-counts, kind="stable")[:PAIRS]]
        chosen = np.concatenate([top, rng.choice(warm, size=PAIRS)])
        chosen = chosen[chosen != anchor]
        overlap = np.asarray(co[n, chosen].todense()).ravel()
        firsts.append(np.full(len(chosen), anchor))
        seconds.append(chosen)
        targets.append(overlap / np.sqrt(shoppers[anchor] * shoppers[chosen]))
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    design = np.column_stack([_pair_cosines(groups[g], rows[first], rows[second]) for g in present])
    fitted, _ = nnls(design, np.concatenate(targets))
    if fitted.sum() <= 0:
        fitted = np.ones(len(present))
    fitted = fitted / fitted.sum()
    return {g: float(fitted[present.index(g)]) if g in present else 0.0 for g in GROUPS}


def item_vectors(
    groups: dict[str, sp.csr_matrix], weights: dict[str, float], rows: npt.NDArray[np.int64]
) -> Vectors:
    """The weighted groups side by side, one row per code (`rows`: each code's catalog row,
    -1 for an empty row)."""
    parts = [math.sqrt(weights.get(g, 0.0)) * groups[g] for g in GROUPS if groups[g].shape[1]]
    n_rows = next(iter(groups.values())).shape[0]
    joined = sp.hstack(parts).tocsr() if parts else sp.csr_matrix((n_rows, 0))
    picked = sp.vstack([joined, sp.csr_matrix((1, joined.shape[1]))]).tocsr()[
        np.where(rows >= 0, rows, n_rows)
    ]
    picked.eliminate_zeros()
    picked.sort_indices()
    return Vectors(
        picked.indptr.astype(np.int64),
        picked.indices.astype(np.int64),
        picked.data.astype(np.float32),
        int(picked.shape[1]),
    )


@dataclass
class NewItemsReport:
    """What training learned and chose for new items, as the manifest keeps it."""

    weights: dict[str, float] = field(default_factory=dict)
    share: float = 0.0
    chosen_on: str = ""
    evidence: dict[str, dict[str, float | int]] = field(default_factory=dict)
    young: int = 0
    cold: int = 0

    def to_json(self) -> dict[str, Any]:
        """As the manifest's `new_items` entry."""
        return {
            "weights": {g: round(w, 4) for g, w in self.weights.items()},
            "share": self.share,
            "age_days": AGE_DAYS,
            "chosen_on": self.chosen_on,
            "evidence": self.evidence,
            "young": self.young,
            "cold": self.cold,
        }


def fit_new_items(
    catalog: Catalog,
    item_ids: npt.NDArray[np.str_],
    first_event_ms: npt.NDArray[np.int64],
    touched: sp.csr_matrix,
    now_ms: int,
    share: float,
    *,
    age_days: float = AGE_DAYS,
    seed: int = 42,
) -> tuple[NewItems, dict[str, float]]:
    """The version's new-item part: item codes first (`item_ids`, with their first event,
    or -1 for none before `now_ms`), then the catalog's active items without events.

    An item is young when the shop created it (or a dump first listed it, or, where that is
    later, it was first touched) less than `age_days` before `now_ms`, and not after it."""
    if not len(catalog):
        rows = np.zeros(len(item_ids) + 1, np.int64)
        empty = Vectors(rows, np.empty(0, np.int64), np.empty(0, np.float32), 0)
        none, no_codes = np.empty(0, dtype=str), np.empty(0, np.int64)
        return NewItems(len(item_ids), none, none, empty, no_codes, share, age_days), {}
    rows = catalog.rows(item_ids)
    cold = np.setdiff1d(catalog.item_ids[catalog.active], item_ids)
    cold = cold[catalog.rows(cold) >= 0] if len(cold) else cold
    all_rows = np.concatenate([rows, catalog.rows(cold)]).astype(np.int64)
    groups = catalog.features
    weights = learn_weights(groups, rows, touched, seed)
    vectors = item_vectors(groups, weights, all_rows)
    events = np.concatenate([first_event_ms, np.full(len(cold), -1)]).astype(np.int64)
    active = np.where(all_rows >= 0, catalog.active[np.maximum(all_rows, 0)], True)
    has_vector = np.diff(vectors.indptr) > 0
    young = _young(catalog, all_rows, events, now_ms, age_days) & active & has_vector
    categories = np.array([catalog.category[r] or "" for r in catalog.rows(cold)], dtype=str)
    new_items = NewItems(
        n_items=len(item_ids),
        cold_ids=cold.astype(str),
        cold_categories=categories,
        vectors=vectors,
        young=np.flatnonzero(young).astype(np.int64),
        share=share,
        age_days=age_days,
    )
    return new_items, weights


def _young(
    catalog: Catalog,
    rows: npt.NDArray[np.int64],
    first_event_ms: npt.NDArray[np.int64],
    now_ms: int,
    age_days: float,
) -> npt.NDArray[np.bool_]:
    """Which codes' items came to be less than `age_days` before `now_ms`: by the shop's
    creation time where the catalog has one (and not after `now_ms`); else by the earlier of
    their first listing (if not after `now_ms`) and their first event, and young when there
    is neither (an item with no event before `now_ms` is new to the shop's shoppers)."""
    since = now_ms - age_days * DAY_MS
    listed_row = rows >= 0
    at = np.maximum(rows, 0)
    listed = np.where(listed_row, catalog.listed_ms[at], -1) if len(catalog) else rows * 0 - 1
    created = listed_row & catalog.created[at] if len(catalog) else rows < -1
    never = np.iinfo(np.int64).max
    start = np.where(first_event_ms >= 0, first_event_ms, never)
    start = np.where(listed_row & (listed <= now_ms), np.minimum(start, listed), start)
    by_creation = (listed >= since) & (listed <= now_ms)
    return np.where(created, by_creation, (start == never) | (start >= since))


def explored_rows(
    new_items: NewItems,
    best: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    histories: Iterable[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]],
    share: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Lists (codes, -1 padded) with their exploration slots given to each user's young
    items (from their history's items and weights; items the user touched are left out)."""
    k = best.shape[1]
    slots = len(explore_slots(k, share))
    out_best, out_scores = np.full_like(best, -1), np.zeros_like(scores)
    for n, (items, weights) in enumerate(histories):
        keep = best[n] >= 0
        ranked = list(zip(best[n][keep].tolist(), scores[n][keep].tolist(), strict=True))
        young = new_items.young_for(items, weights, slots + k, skip=set(items.tolist()))
        row = explore(ranked, young, k, share)
        out_best[n, : len(row)] = [c for c, _ in row]
        out_scores[n, : len(row)] = [s for _, s in row]
    return out_best, out_scores


def choose_share(
    new_items: NewItems,
    served: npt.NDArray[np.int64],
    histories: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]],
    truth: sp.csr_matrix,
) -> tuple[float, dict[str, dict[str, float | int]]]:
    """The exploration share the holdout supports: the one of `SHARES` with the largest
    gain in NDCG@10 over none, among those whose 95% interval is above 0; else none."""

    def scored(best: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        best = np.where(best < truth.shape[1], best, -1)  # a cold item is never in the truth
        return user_ndcg(best, truth, SELECT_CUTOFF)

    zeros = np.zeros(served.shape, np.float32)
    base = scored(served)
    evidence: dict[str, dict[str, float | int]] = {}
    for share in SHARES:
        explored, _ = explored_rows(new_items, served, zeros, histories, share)
        evidence[f"{share:g}"] = paired(scored(explored), base).to_json()
    return supported_share(evidence), evidence


def supported_share(evidence: Mapping[str, Mapping[str, float | int]]) -> float:
    """Of the shares tried (`choose_share`'s evidence, by share), the one with the largest
    gain among those whose 95% interval is above 0; 0 where none is."""
    best_share, best_gain = 0.0, 0.0
    for share, gain in evidence.items():
        if gain["low"] > 0 and gain["difference"] > best_gain:
            best_share, best_gain = float(share), float(gain["difference"])
    return best_share


def catalog_fields(catalog: Catalog, item_ids: npt.NDArray[np.str_]) -> ItemFields:
    """The catalog's fields for these ids (codes in their order), as the Personalize items
    file has them, for filters; ids the catalog does not list have no values."""
    from etl.personalize import field_name

    rows = catalog.rows(item_ids)
    listed = np.flatnonzero(rows >= 0)
    texts: dict[str, list[tuple[int, str]]] = {"CATEGORY": [], "BRAND": [], "ACTIVE": []}
    for code in listed.tolist():
        row = int(rows[code])
        for name, value in (
            ("CATEGORY", catalog.category[row]),
            ("BRAND", catalog.brand[row]),
            ("ACTIVE", "true" if catalog.active[row] else "false"),
        ):
            if value:
                texts[name].append((code, value))
        for key, value in _extracted(catalog.attributes[row]):
            texts.setdefault(field_name(key), []).append((code, value))
    price = np.full(len(item_ids), np.nan)
    price[listed] = catalog.price[rows[listed]]
    created = np.full(len(item_ids), np.nan)
    created[listed] = catalog.listed_ms[rows[listed]] // 1000
    return ItemFields(
        len(item_ids),
        {name: categorical(pairs) for name, pairs in texts.items() if name not in NUMERIC_FIELDS},
        {"PRICE": price, "CREATION_TIMESTAMP": created},
    )


def _extracted(raw: str) -> list[tuple[str, str]]:
    """The shop's own attributes as (key, text), as the Personalize export's
    json_extract_string reads them."""
    try:
        found = json.loads(raw)
    except json.JSONDecodeError:
        return []
    pairs = []
    for key, value in found.items() if isinstance(found, dict) else ():
        if value is None or isinstance(value, dict | list):
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        pairs.append((key, text))
    return pairs
