"""New-items benchmark: how often items first seen after the cut are recommended, and how
often they are hits, when a share of each list is kept for young items (issue 28, part 2).

Each shop is imported with its catalog, curated, trained with an exploration share of
`SHARE` and published with the events before its cut, as `benchmarks.quality` does. The
items first touched after the cut are the new ones (for the generated shop, the catalog at
the cut lists only the items created by then; the real sets' catalogs list every item, so
their new items are all ones that will sell, which flatters every filler alike). Every user
known before the cut who came back is asked for 10 items through the API, and the same
list's exploration slots are filled three ways:

- ours: the young items nearest the user's history by learned attribute weights (what the
  API serves; the benchmark checks it rebuilds the API's answer);
- catalogue order: young items as the catalogue lists them (by id);
- category popularity: young items in the user's own categories first (by the share of
  their history there), then by their category's events before the cut.

Beside them, the list with no exploration. Reported: the share of answers showing a new
item, the share of users with a new item among their later items who got one of them
(new-item hits), and NDCG@10 on all later items, with 95% bootstrap intervals over users.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow.compute as pc

from benchmarks.datasets import DataSet, data_sets
from benchmarks.foundation import Row
from benchmarks.quality import publish_before_cut, ratio_interval
from benchmarks.ranking import ndcg_at_10
from training.attributes import supported_share
from training.metrics import paired
from training.new_items import explore, explore_slots
from training.pipeline import TrainOptions

#: The exploration share trained with, so that every filler has the same slots to fill.
SHARE: Final = 0.2
_K: Final = 10
Floats64 = npt.NDArray[np.float64]


def _scored(data: DataSet, root: Path) -> tuple[dict[str, dict[str, Floats64]], str]:
    """Per-user figures of each filler; and what `auto` would have chosen."""
    cut_ms = int(data.cut.timestamp() * 1000)
    published = publish_before_cut(data, root, TrainOptions(exploration=SHARE))
    recommender, report = published.recommender, published.report
    model = recommender.live.get()
    new = model.new_items
    assert new is not None, "the version has no new-item part: was the catalog imported?"
    every_id = np.concatenate([model.item_ids, new.cold_ids]).astype(str)
    categories = np.concatenate([model.categories, new.cold_categories]).astype(str)
    before = data.table.filter(pc.less(data.table["ts_ms"], cut_ms))
    after = data.table.filter(pc.greater_equal(data.table["ts_ms"], cut_ms))
    seen_before = set(pc.unique(before["item_id"]).to_pylist())
    item_counts = Counter(before["item_id"].to_pylist())
    category_events: Counter[str] = Counter()
    for item, n in item_counts.items():
        if (code := model.item_code(item)) is not None:
            category_events[str(categories[code])] += n
    young = [int(c) for c in new.young.tolist()]
    in_catalogue_order = sorted(young, key=lambda c: str(every_id[c]))
    touched: dict[str, set[str]] = {}
    known = set(pc.unique(before["user_id"]).to_pylist())
    for user, item in zip(after["user_id"].to_pylist(), after["item_id"].to_pylist(), strict=True):
        if user in known:
            touched.setdefault(user, set()).add(item)
    slots = len(explore_slots(_K, SHARE))
    figures: dict[str, dict[str, list[float]]] = {}
    for user in sorted(touched):
        history = model.user_history(user)
        now = model.last_event_ms
        # The list before exploration, as long as the API's own (k + slots).
        ranked = model._top(history, now, _K + slots, np.empty(0, np.int64), None)
        own = set(history.items.tolist())
        mine = Counter(str(categories[c]) for c in history.items.tolist())
        pool = [c for c in young if c not in own]
        fillers = {
            "ours": new.young_for(history.items, history.weights, slots + _K, skip=own),
            "catalogue order": [(c, 0.0) for c in in_catalogue_order if c not in own][: slots + _K],
            "category popularity": [
                (c, 0.0)
                for c in sorted(
                    pool,
                    key=lambda c: (
                        -mine[str(categories[c])],
                        -category_events[str(categories[c])],
                        c,
                    ),
                )[: slots + _K]
            ],
            "no exploration": [],
        }
        answer = [i for i, _ in recommender.personalized(user, _K).items]
        relevant = touched[user]
        new_relevant = {i for i in relevant if i not in seen_before}
        for name, picks in fillers.items():
            listed = [str(every_id[c]) for c, _ in explore(ranked, picks, _K, SHARE)]
            if name == "ours":
                assert listed == answer, f"{data.name}: the API served {answer}, not {listed}"
            shown = [i for i in listed if i not in seen_before]
            row = figures.setdefault(name, {"shown": [], "hits": [], "ndcg": []})
            row["shown"].append(float(bool(shown)))
            row["ndcg"].append(ndcg_at_10(listed, relevant))
            if new_relevant:
                row["hits"].append(float(bool(new_relevant & set(shown))))
    auto = supported_share(report.new_items.evidence)
    learned = ", ".join(f"{g} {w:.2f}" for g, w in report.new_items.weights.items())
    return (
        {n: {k: np.array(v) for k, v in f.items()} for n, f in figures.items()},
        f"{auto:g} on its holdout; attribute weights learned: {learned}",
    )


def new_items_rows(n_events: int, data: Path) -> tuple[list[Row], list[str]]:
    """The new-items section: each real set present and the generated shop."""
    sets, notes = data_sets(n_events, data)
    rows: list[Row] = []
    lines: list[str] = []
    for found in sets:
        with tempfile.TemporaryDirectory(prefix="recs-bench-new-items-") as tmp:
            figures, auto = _scored(found, Path(tmp))
        ours = figures["ours"]
        for peer in ("catalogue order", "category popularity"):
            theirs = figures[peer]
            rows.append(
                Row(
                    f"new items, {found.name}: users whose later new items were recommended",
                    float(ours["hits"].mean()),
                    peer,
                    float(theirs["hits"].mean()),
                    unit="",
                )
            )
            gain = paired(ours["hits"], theirs["hits"])
            lines.append(
                f"{found.name}: new-item hits, ours {ours['hits'].mean():.4f} against {peer} "
                f"{theirs['hits'].mean():.4f}: difference {gain.difference:+.4f} (95% interval "
                f"{gain.low:+.4f} to {gain.high:+.4f}), over {gain.users:,} users with a new "
                "item among their later ones."
            )
        none = figures["no exploration"]
        rows.append(
            Row(
                f"new items, {found.name}: NDCG@10 with a {SHARE:g} share explored",
                float(ours["ndcg"].mean()),
                "no exploration",
                float(none["ndcg"].mean()),
                unit="",
            )
        )
        low, high = ratio_interval(ours["ndcg"], none["ndcg"])
        lines.append(
            f"{found.name}: {len(ours['ndcg']):,} users; answers showing a new item: ours "
            f"{ours['shown'].mean():.1%}, catalogue order "
            f"{figures['catalogue order']['shown'].mean():.1%}, category popularity "
            f"{figures['category popularity']['shown'].mean():.1%}, none "
            f"{none['shown'].mean():.1%}. NDCG@10 ours / none "
            f"{ours['ndcg'].mean() / max(none['ndcg'].mean(), 1e-12):.3f} (95% interval "
            f"{low:.3f} to {high:.3f}); `auto` chose a share of {auto}."
        )
    return rows, [*lines, *notes]
