"""Ranking benchmark: `POST /v1/recommendations/ranking`'s order beside popularity's and the
list's own, on the real shops and the generated one.

Each shop is imported, curated, trained and published with the events before its cut, as
`benchmarks.quality` does. Then every user known before the cut who came back is given a
list, as a shop gives a search result: the items they touched after the cut (those the model
knows), mixed with 100 items sampled from the catalogue, shuffled. The list is ranked three
ways and each ranking's NDCG@10 is scored on the items the user touched:

- ours: the API's answer (`Recommender.ranking`, what the route serves);
- popularity: the list by each item's events before the cut, most first;
- the shop's own order: the list as given (shuffled, so: no ordering at all).

Each ratio has a 95% bootstrap interval over users.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow.compute as pc

from benchmarks.datasets import DataSet, data_sets
from benchmarks.foundation import Row
from benchmarks.quality import publish_before_cut, ratio_interval

#: Items sampled from the catalogue into each user's list, as issue 28 asks.
SAMPLED: Final = 100
_K: Final = 10


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    """NDCG@10 of one ranked list against the items the user touched."""
    gains = [1.0 / np.log2(n + 2) for n, item in enumerate(ranked[:_K]) if item in relevant]
    ideal = sum(1.0 / np.log2(n + 2) for n in range(min(len(relevant), _K)))
    return float(sum(gains) / ideal) if ideal else 0.0


def _scored(data: DataSet, root: Path) -> tuple[npt.NDArray[np.float64], ...]:
    """Per-user NDCG@10 of ours, popularity's and the list's own order."""
    cut_ms = int(data.cut.timestamp() * 1000)
    recommender = publish_before_cut(data, root).recommender
    model = recommender.live.get()
    before = data.table.filter(pc.less(data.table["ts_ms"], cut_ms))
    counts = pc.value_counts(before["item_id"]).to_pylist()
    popularity = {entry["values"]: entry["counts"] for entry in counts}
    known_users = set(pc.unique(before["user_id"]).to_pylist())
    after = data.table.filter(pc.greater_equal(data.table["ts_ms"], cut_ms))
    touched: dict[str, set[str]] = {}
    for user, item in zip(after["user_id"].to_pylist(), after["item_id"].to_pylist(), strict=True):
        if user in known_users and model.item_code(item) is not None:
            touched.setdefault(user, set()).add(item)
    catalogue = [str(i) for i in model.item_ids]
    rng = np.random.default_rng(7)
    ours, popular, given = [], [], []
    for user in sorted(touched):
        relevant = touched[user]
        sampled = [catalogue[n] for n in rng.choice(len(catalogue), SAMPLED, replace=False)]
        items = list(dict.fromkeys([*sorted(relevant), *sampled]))
        rng.shuffle(items)
        answer = recommender.ranking(user, items)
        ours.append(ndcg_at_10([i for i, _ in answer.items], relevant))
        popular.append(ndcg_at_10(sorted(items, key=lambda i: -popularity.get(i, 0)), relevant))
        given.append(ndcg_at_10(items, relevant))
    return np.array(ours), np.array(popular), np.array(given)


def ranking_rows(n_events: int, data: Path) -> tuple[list[Row], list[str]]:
    """The ranking section: each real set present and the generated shop."""
    sets, notes = data_sets(n_events, data)
    rows: list[Row] = []
    lines: list[str] = []
    for found in sets:
        with tempfile.TemporaryDirectory(prefix="recs-bench-ranking-") as tmp:
            ours, popular, given = _scored(found, Path(tmp))
        for peer, theirs in (("popularity order", popular), ("the list's own order", given)):
            rows.append(
                Row(
                    f"ranking, {found.name}: NDCG@10 of each user's later items among "
                    f"{SAMPLED} sampled",
                    float(ours.mean()),
                    peer,
                    float(theirs.mean()),
                    unit="",
                )
            )
            low, high = ratio_interval(ours, theirs)
            ratio = ours.mean() / theirs.mean()
            lines.append(
                f"{found.name}: {len(ours):,} users; ours / {peer} {ratio:.2f} (95% interval "
                f"{low:.2f} to {high:.2f})."
            )
    return rows, [*lines, *notes]
