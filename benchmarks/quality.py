"""Quality benchmark: our recipes beside `implicit`'s ALS and BPR at their default settings.

All models train on the same time-based split and are scored with the same metrics
(`training.metrics`). Peak memory is the process's resident high-water mark, reset before
each model (Linux `/proc/self/clear_refs`), so each figure is that model's own.
Input: a generated shop, or any Amazon Personalize interactions CSV
(`python -m benchmarks --interactions-csv path`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import scipy.sparse as sp

from benchmarks.child import peak_rss_mb, reset_peak
from benchmarks.foundation import Row
from ingestion.contract import EVENT_TYPES
from ingestion.generator import ShopSpec, generate_shop
from training.data import DEFAULT_WEIGHTS, Interactions, time_split
from training.metrics import evaluate
from training.pipeline import DEFAULT_HALF_LIFE_DAYS, SELECT_ON, K, candidates
from training.recipes import Popularity, Recipe

END = datetime(2026, 11, 1, tzinfo=UTC)


def shop_log(
    n_events: int, seed: int = 21, users: int | None = None, items: int | None = None
) -> Interactions:
    """A generated shop's events, straight from the generator's columns."""
    shop = generate_shop(
        ShopSpec(
            users=users or max(1000, n_events // 50),
            items=items or max(500, n_events // 200),
            categories=30,
            days=90,
            events=n_events,
            seed=seed,
            end=END,
        )
    )
    table = pa.table(
        {
            "user_id": pc.cast(pa.array(shop.user), pa.string()),
            "item_id": pc.cast(pa.array(shop.item), pa.string()),
            "event_type": pa.array(np.array(EVENT_TYPES)[shop.kind]),
            "ts_ms": pa.array(shop.ts_ms),
        }
    )
    return Interactions.from_arrow(table)


def csv_log(path: Path) -> Interactions:
    """A Personalize interactions CSV: USER_ID, ITEM_ID, TIMESTAMP (s), EVENT_TYPE optional.

    Event types other than ours count as views.
    """
    table = pacsv.read_csv(path)
    names = {n.upper(): n for n in table.column_names}
    kinds = (
        table[names["EVENT_TYPE"]]
        if "EVENT_TYPE" in names
        else pa.nulls(table.num_rows, pa.string())
    )
    known = pc.is_in(kinds, value_set=pa.array(EVENT_TYPES))
    return Interactions.from_arrow(
        pa.table(
            {
                "user_id": pc.cast(table[names["USER_ID"]], pa.string()),
                "item_id": pc.cast(table[names["ITEM_ID"]], pa.string()),
                "event_type": pc.if_else(pc.fill_null(known, False), kinds, "view"),
                "ts_ms": pc.multiply(pc.cast(table[names["TIMESTAMP"]], pa.int64()), 1000),
            }
        )
    )


def _implicit(kind: str) -> Callable[[sp.csr_matrix, np.ndarray, sp.csr_matrix], np.ndarray]:
    def run(matrix: sp.csr_matrix, users: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            model = (AlternatingLeastSquares if kind == "als" else BayesianPersonalizedRanking)(
                random_state=42
            )
            model.fit(matrix, show_progress=False)
        ids, _ = model.recommend(users, rows, N=K, filter_already_liked_items=False)
        return np.asarray(ids, dtype=np.int64)

    return run


def quality_rows(log: Interactions, label: str) -> tuple[list[Row], list[str]]:
    """Every model on one split: NDCG@10 and recall@20 rows, with train time and memory."""
    split = time_split(log, seed=42)
    counts = log.matrix(DEFAULT_WEIGHTS, mask=split.train)
    matrix = log.matrix(DEFAULT_WEIGHTS, mask=split.train, half_life_days=DEFAULT_HALF_LIFE_DAYS)
    binary = counts.copy()
    binary.data[:] = 1.0
    users = split.test_users.astype(np.int64)
    results: dict[str, dict[str, float]] = {}

    def measure(name: str, fit_and_rank: Callable[[], np.ndarray]) -> None:
        reset_peak()
        started = time.perf_counter()
        ranked = fit_and_rank()
        seconds = time.perf_counter() - started
        results[name] = evaluate(ranked, split.truth) | {"seconds": seconds, "mb": peak_rss_mb()}

    def ours(model: Recipe) -> Callable[[], np.ndarray]:
        return lambda: model.fit(matrix).recommend(users, matrix[users], K)[0]

    measure(
        "popularity-count", lambda: Popularity().fit(counts).recommend(users, counts[users], K)[0]
    )
    for model in candidates(log.n_items, 42):
        measure(model.name, ours(model))
    # implicit's defaults on the plain interaction counts, as a user of it would start.
    for kind in ("als", "bpr"):
        measure(
            f"implicit {kind}", functools.partial(_implicit(kind), binary, users, binary[users])
        )

    mine = [m.name for m in candidates(log.n_items, 42)]
    chosen = max(mine, key=lambda name: results[name][SELECT_ON])
    peer = max(("implicit als", "implicit bpr"), key=lambda name: results[name][SELECT_ON])
    ours_m, peer_m = results[chosen], results[peer]
    rows = [
        Row(
            f"{label}: NDCG@10, chosen ({chosen}) vs best implicit default ({peer})",
            ours_m[SELECT_ON] * 1000,
            peer,
            peer_m[SELECT_ON] * 1000,
            unit="x1000",
        ),
        Row(
            f"{label}: recall@20, {chosen}",
            ours_m["recall_at_20"] * 1000,
            peer,
            peer_m["recall_at_20"] * 1000,
            unit="x1000",
        ),
        Row(
            f"{label}: train + rank time, {chosen}",
            ours_m["seconds"],
            peer,
            peer_m["seconds"],
            unit="s",
        ),
        Row(f"{label}: peak memory, {chosen}", ours_m["mb"], peer, peer_m["mb"], unit="MB"),
    ]
    table = [
        f"{label}: {len(log):,} interactions, {log.n_users:,} users, {log.n_items:,} items; "
        f"{split.n_test:,} held-out users. Every model on the same split:",
        "",
        "| model | NDCG@10 | recall@20 | MRR@25 | coverage | train+rank s | peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in results.items():
        table.append(
            f"| {name} | {m[SELECT_ON]:.4f} | {m['recall_at_20']:.4f} | "
            f"{m['mean_reciprocal_rank_at_25']:.4f} | {m['coverage']:.3f} | "
            f"{m['seconds']:.1f} | {m['mb']:,.0f} |"
        )
    return rows, table


def quality(n_events: int, csv: Path | None) -> tuple[list[Row], list[str]]:
    """The quality section: the generated shop, and a CSV when one is given."""
    rows, notes = quality_rows(shop_log(n_events), "generated shop")
    if csv is not None:
        more_rows, more_notes = quality_rows(csv_log(csv), csv.name)
        rows += more_rows
        notes += ["", *more_notes]
    return rows, notes
