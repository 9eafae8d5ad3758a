"""Serving's numpy-only model against the training recipes it mirrors, and its import graph."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from ingestion.lake import LocalLake
from serving.model import ServingModel
from training.recipes import ALS, EASE, ItemKNN, Popularity, Recipe

rng = np.random.default_rng(3)
N_USERS, N_ITEMS = 300, 40
MATRIX = sp.random(N_USERS, N_ITEMS, density=0.15, format="csr", random_state=rng, dtype=np.float32)
MATRIX.data = np.ceil(MATRIX.data * 8).astype(np.float32)
ITEM_IDS = np.array([f"I{i:03d}" for i in range(N_ITEMS)])


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    sink = io.BytesIO()
    np.savez(sink, **arrays)
    return sink.getvalue()


def _publish_version(lake: LocalLake, model: Recipe, similar: Recipe) -> ServingModel:
    prefix = "models/v1"
    popular = Popularity().fit(MATRIX)
    lake.write_bytes(
        f"{prefix}/ids.npz",
        _npz(
            {
                "user_ids": np.array([f"U{u}" for u in range(N_USERS)]),
                "item_ids": ITEM_IDS,
                "item_categories": np.array(["lamps" if i % 2 else "rugs" for i in range(N_ITEMS)]),
            }
        ),
    )
    lake.write_bytes(f"{prefix}/user-personalization.npz", _npz(model.arrays()))
    lake.write_bytes(f"{prefix}/similar-items.npz", _npz(similar.arrays()))
    lake.write_bytes(f"{prefix}/popularity-count.npz", _npz(popular.arrays()))
    lake.write_bytes(f"{prefix}/trending.npz", _npz(popular.arrays()))
    manifest = {
        "chosen": model.name,
        "params": {model.name: model.params},
        "event_weights": {"view": 1.0, "add_to_cart": 4.0, "purchase": 8.0},
        "half_life_days": None,
        "created_at": "2026-11-02T00:00:00.000Z",
        "data": {"last_event": "2026-11-01T23:59:00.000Z"},
    }
    lake.write_bytes(f"{prefix}/manifest.json", json.dumps(manifest).encode())
    return ServingModel.load(lake, "v1")


@pytest.mark.parametrize(
    "model", [ItemKNN(neighbours=10), EASE(l2=5.0, neighbours=10), ALS(factors=8, seed=1)]
)
def test_serving_scores_match_the_training_recipe(model: Recipe, local_lake: LocalLake) -> None:
    model.fit(MATRIX)
    serving = _publish_version(local_lake, model, ItemKNN(neighbours=10).fit(MATRIX))
    for user in range(0, N_USERS, 37):
        row = MATRIX[user]
        expected = np.asarray(model.scores(None, row), dtype=np.float32).ravel()
        got = serving.personal_scores(row.indices.astype(np.int64), row.data)
        assert got is not None
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_history_top_and_related(local_lake: LocalLake) -> None:
    knn = ItemKNN(neighbours=10).fit(MATRIX)
    serving = _publish_version(local_lake, knn, knn)
    items, weights = serving.history_row(
        [("I001", "view", 0), ("I001", "purchase", 0), ("nope", "view", 0), ("I002", "wish", 0)],
        now_ms=0,
    )
    assert items.tolist() == [1]
    assert weights.tolist() == [9.0]
    scores = serving.personal_scores(items, weights)
    assert scores is not None
    top = serving.top(scores, 5, exclude=[1], category="lamps", only_scored=True)
    assert top
    assert all(int(i[1:]) % 2 == 1 and i != "I001" for i, _ in top)
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    related = serving.related("I003", 4)
    assert related is not None
    expected, _ = knn.similar_items(np.array([3]), 4)
    assert [i for i, _ in related] == [f"I{c:03d}" for c in expected[0] if c >= 0]
    assert serving.related("unknown", 4) is None


def test_the_serving_model_imports_nothing_heavy() -> None:
    # serving.publish too: `recs publish` runs where the trainer's libraries may not be.
    probe = (
        "import sys, serving.model, serving.store, serving.publish; "
        "heavy = {'scipy', 'pandas', 'pyarrow', 'awswrangler', 'duckdb', 'implicit', "
        "'matplotlib'}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
