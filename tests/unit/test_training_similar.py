"""Related items for items with too little data: same category, most popular first."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from training.data import Interactions
from training.similar import category_fallback


def test_thin_items_get_their_categorys_popular_items() -> None:
    events = [("U1", "A1", 9), ("U2", "A1", 9), ("U3", "A2", 9), ("U4", "B1", 9)] * 3
    events += [("U5", "A3", 1)]  # A3: one event, too few for learned neighbours
    users, items, _ = zip(*events, strict=True)
    log = Interactions.from_arrow(
        pa.table(
            {
                "user_id": users,
                "item_id": items,
                "event_type": ["view"] * len(events),
                "ts_ms": list(range(len(events))),
            }
        )
    )
    popularity = np.bincount(log.item, minlength=log.n_items).astype(np.float32)
    best = np.tile(np.arange(2, dtype=np.int64), (log.n_items, 1))
    scores = np.ones((log.n_items, 2), dtype=np.float32)
    categories = {"A1": "lamps", "A2": "lamps", "A3": "lamps", "B1": "rugs"}
    new_best, new_scores, replaced = category_fallback(
        log, categories, popularity, best, scores, min_events=2
    )
    assert replaced == 1
    a3 = list(log.item_ids).index("A3")
    assert [log.item_ids[i] for i in new_best[a3]] == ["A1", "A2"]
    assert new_scores[a3][0] > new_scores[a3][1]
    assert (new_best[:a3] == best[:a3]).all()  # the others keep their learned neighbours
