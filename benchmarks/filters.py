"""Filters benchmark: what a named filter costs an answer, and whether every answer keeps to it,
on the real shops and the generated one.

Each shop is imported, curated, trained and published with the events before its cut, as
`benchmarks.quality` does. For up to `USERS` users the version knows, `Recommender.personalized`
(what the route serves) answers k=10 without a filter (the peer) and with each of four filters,
in the same run, interleaved user by user:

- a category (`INCLUDE ... Items.CATEGORY IN ($CATEGORIES)`, the shop's most common category);
- a price bound (`EXCLUDE ... Items.PRICE > $MAX`, the catalogue's median price);
- not bought in the last 30 days (`EXCLUDE ... Interactions.EVENT_TYPE IN ("purchase")`);
- buy again (`INCLUDE ... Interactions.EVENT_TYPE IN ("purchase")`).

Each answer is checked against its filter, on the version's item fields and each user's
history; a violation is counted, and the section says how many there were.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Final

import numpy as np

from benchmarks.datasets import DataSet, data_sets
from benchmarks.foundation import Row
from benchmarks.quality import publish_before_cut
from common.filters import NamedFilter
from serving.recommend import Named, Recommender
from training.published import PublishedModel

USERS: Final = 300
_K: Final = 10
FILTERS: Final = {
    "a category": NamedFilter(expression="INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORIES)"),
    "a price bound": NamedFilter(expression="EXCLUDE ItemID WHERE Items.PRICE > $MAX"),
    "not bought in 30 days": NamedFilter(
        expression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")',
        within_days=30,
    ),
    "buy again": NamedFilter(
        expression='INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
    ),
}


def _values(model: PublishedModel) -> dict[str, dict[str, str]]:
    """Each filter's values on this shop: its most common category, its median price."""
    category = Counter(c for c in model.categories.tolist() if c).most_common(1)
    prices = model.fields.numeric.get("PRICE") if model.fields is not None else None
    median = float(np.nanmedian(prices)) if prices is not None and np.isfinite(prices).any() else 0
    return {
        "a category": {"CATEGORIES": json.dumps(category[0][0]) if category else '""'},
        "a price bound": {"MAX": f"{median:g}"},
        "not bought in 30 days": {},
        "buy again": {},
    }


def _timed(recommender: Recommender, user: str, named: Named | None) -> tuple[float, list[str]]:
    started = time.perf_counter()
    answer = recommender.personalized(user, _K, named=named)
    return time.perf_counter() - started, [i for i, _ in answer.items]


def _measured(data: DataSet, root: Path) -> tuple[dict[str, list[float]], Counter[str]]:
    """Seconds per answer of each filter (and of none), and each filter's violations."""
    recommender = publish_before_cut(data, root).recommender
    model = recommender.live.get()
    values = _values(model)
    named = {name: Named.of(name, spec, values[name]) for name, spec in FILTERS.items()}
    users = [str(u) for u in model.user_ids[:: max(1, len(model.user_ids) // USERS)][:USERS]]
    seconds: dict[str, list[float]] = {"none": [], **{name: [] for name in FILTERS}}
    violations: Counter[str] = Counter()
    for user in users:
        _timed(recommender, user, None)  # the store's page and the user's history, warm
        took, _ = _timed(recommender, user, None)
        seconds["none"].append(took)
        profile = model.user_history(user)
        for name, wanted in named.items():
            took, items = _timed(recommender, user, wanted)
            seconds[name].append(took)
            allowed = model.selection(wanted.bound, profile, model.last_event_ms)
            violations[name] += sum(not model.allows(allowed, i) for i in items)
    return seconds, violations


def filters_rows(n_events: int, data: Path) -> tuple[list[Row], list[str]]:
    """The filters section: each real set present and the generated shop."""
    sets, notes = data_sets(n_events, data)
    rows: list[Row] = []
    lines: list[str] = []
    for found in sets:
        with tempfile.TemporaryDirectory(prefix="recs-bench-filters-") as tmp:
            seconds, violations = _measured(found, Path(tmp))
        plain = float(np.median(seconds["none"])) * 1e6
        for name in FILTERS:
            rows.append(
                Row(
                    f"filters, {found.name}: median µs per personalized answer (k={_K}), "
                    f"filter {name}",
                    float(np.median(seconds[name])) * 1e6,
                    "no filter, same users and run",
                    plain,
                    unit="µs",
                )
            )
        broken = sum(violations.values())
        lines.append(
            f"{found.name}: {len(seconds['none']):,} users; answers that broke their filter: "
            f"{broken}" + (f" ({dict(violations)})" if broken else "") + "."
        )
    return rows, [*lines, *notes]
