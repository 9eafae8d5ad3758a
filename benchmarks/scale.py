"""Training at scale: the whole `recs train` work on 10M interactions and 100k items.

Each side runs in a fresh child process on the same generated events (generation is not
timed), so wall time and peak memory (VmHWM) are its own:
- ours: `train_on` with its defaults, i.e. tuning on validation folds (within its time
  budget), the served blend and the baselines scored on the holdout, the chosen recipe refit
  on everything, batch recommendations for every user and related items for every item,
  artifacts and manifest written;
- peer: `implicit`'s ALS at its defaults, fit on the same interactions, then top 25 for
  every user: the least a user of implicit does to get the same batch output.
The goal is under 5 minutes and 8 GB on 2 cores.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.child import peak_rss_mb, run_child
from benchmarks.foundation import Row
from training.data import Interactions

END = datetime(2026, 11, 1, tzinfo=UTC)


def _child(kind: str, n_events: int) -> dict[str, float]:
    return run_child("benchmarks.scale", kind, str(n_events))


def scale_rows(n_events: int) -> tuple[list[Row], list[str]]:
    """Ours and the peer, each in its own process."""
    ours = _child("ours", n_events)
    peer = _child("implicit", n_events)
    label = f"{n_events:,} interactions, {int(ours['items']):,} items"
    rows = [
        Row(
            f"train at scale: wall time, {label}",
            ours["seconds"],
            "implicit ALS defaults: fit + top 25 for every user",
            peer["seconds"],
            unit="s",
        ),
        Row(
            f"train at scale: peak memory, {label}",
            ours["rss_mb"],
            "implicit ALS defaults",
            peer["rss_mb"],
            unit="MB",
        ),
    ]
    notes = [
        f"Ours: tuning included, {ours['chosen_name']} chosen and refit, "
        f"batch output for {int(ours['users']):,} users and {int(ours['items']):,} items, in "
        f"{ours['seconds']:.0f} s and {ours['rss_mb']:,.0f} MB. Goal: under 300 s and 8,192 MB.",
    ]
    return rows, notes


def _log(n_events: int) -> Interactions:
    from benchmarks.quality import shop_log

    return shop_log(n_events, seed=3, users=n_events // 50, items=min(100_000, n_events // 100))


def main() -> None:
    """Child: `python -m benchmarks.scale ours|implicit N`."""

    kind, n_events = sys.argv[1], int(sys.argv[2])
    log = _log(n_events)
    started = time.perf_counter()
    figures: dict[str, float | str] = {"users": log.n_users, "items": log.n_items}
    if kind == "ours":
        from ingestion.lake import LocalLake
        from training.data import DEFAULT_WEIGHTS
        from training.pipeline import train_on

        with tempfile.TemporaryDirectory(prefix="recs-bench-scale-") as tmp:
            report = train_on(
                LocalLake(Path(tmp)),
                log,
                weights=DEFAULT_WEIGHTS,
                seed=42,
                now=END,
            )
        figures["chosen_name"] = report.chosen
    else:
        import numpy as np
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        matrix = log.matrix({"view": 1.0, "add_to_cart": 1.0, "purchase": 1.0})
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(random_state=42)
            model.fit(matrix, show_progress=False)
        model.recommend(np.arange(log.n_users), matrix, N=25)
    figures["seconds"] = time.perf_counter() - started
    figures["rss_mb"] = peak_rss_mb()
    sys.stdout.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
