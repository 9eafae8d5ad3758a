"""Experiments benchmark: an A/B experiment replayed on each shop's held-out events, through
the product's own path, to see whether what it calls agrees with the offline gate.

Each shop is imported, curated, trained and published with the events before its cut
(`benchmarks.quality`), the control being what `recs train` chooses. A candidate, ALS with
its defaults (`recs train --recipe als`), is trained on the same events, and
`recs models experiment start` gives it half of the shoppers. Then, for up to `USERS`
shoppers who come back after the cut:

- the recommender (`Recommender.personalized`, as the route serves it, through the
  experiment's split) answers k=10, with a recommendationId that names its version;
- the shopper's events after the cut are posted back as they happened, and the first one
  on an item the answer held also carries the answer's recommendationId (a click; a later
  purchase of that item is a conversion);
- the ETL curates them (on a clock moved past 2000 for a set older than that, which the
  live event contract refuses), and `orchestration.outcomes.outcome` reads each arm's click-through
  and conversion, with intervals and the verdict (minimum days 1: the replay is the
  experiment's whole span).

Beside it: each version's offline NDCG@10 on the same holdout, from its manifest, and whether
the replay's direction agrees with it.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pyarrow.compute as pc

from benchmarks.datasets import DataSet, data_sets
from benchmarks.foundation import Row
from benchmarks.quality import publish_before_cut

USERS: Final = 2000
_K: Final = 10


def _replayed(data: DataSet, root: Path) -> dict[str, Any]:
    """One shop's replay: the outcome's body, and both versions' offline NDCG@10."""
    from etl.job import run_etl
    from ingestion.raw import event_object_key, gzip_bytes
    from orchestration.outcomes import outcome
    from serving.experiment import recommendation_id
    from serving.experiment_control import start
    from serving.recommend import LiveModel
    from training.pipeline import TrainOptions, train
    from training.tuning import SELECT_ON

    published = publish_before_cut(data, root)
    lake, recommender = published.lake, published.recommender
    candidate = train(lake, TrainOptions(recipe="als"), now=data.cut + timedelta(seconds=1))
    # The event contract refuses a live event dated before 2000 (MovieLens's are from 1998):
    # such a replay runs on a clock moved past it, by whole days.
    shift = max(timedelta(0), timedelta(days=(datetime(2001, 1, 1, tzinfo=UTC) - data.cut).days))
    experiment = start(
        lake, recommender.store, candidate.version, share=0.5, min_days=1, now=data.cut + shift
    )
    recommender.candidate = LiveModel(lake, recommender.store, arm="candidate")
    known = set(recommender.live.get().user_ids.tolist())
    cut_ms = int(data.cut.timestamp() * 1000)
    after = data.table.filter(pc.greater_equal(data.table["ts_ms"], cut_ms))
    later: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for user, item, kind, ts in zip(
        after["user_id"].to_pylist(),
        after["item_id"].to_pylist(),
        after["event_type"].to_pylist(),
        after["ts_ms"].to_pylist(),
        strict=True,
    ):
        if user in known:
            later[user].append((ts, item, kind))
    users = sorted(later)[:: max(1, len(later) // USERS)][:USERS]
    lines: list[bytes] = []
    for user in users:
        answer = recommender.personalized(user, _K)
        shown, rid = {i for i, _ in answer.items}, recommendation_id(answer.model_version)
        clicked = False
        for n, (ts, item, kind) in enumerate(sorted(later[user])):
            moved = ts + int(shift.total_seconds() * 1000)
            event = {"event_id": f"{user}-{n}", "user_id": user, "item_id": item, "ts": moved}
            if not clicked and item in shown:
                clicked = True
                click = {**event, "event_id": f"{user}-click", "event_type": "view"}
                lines.append(_line({**click, "recommendation_id": rid}))
            lines.append(_line({**event, "event_type": kind}))
    last = max(max(e[0] for e in later[u]) for u in users)
    end = datetime.fromtimestamp(last / 1000, UTC) + shift
    # Delivered after the replay (a folder past the ETL's bookmark from the cut).
    key = event_object_key("firehose", end, "experiment-replay")
    lake.write_bytes(key, gzip_bytes(b"\n".join(lines) + b"\n"))
    run_etl(lake, now=end + timedelta(days=1))
    found = outcome(lake, experiment, now=end + timedelta(seconds=1)).body()
    found["offline"] = {
        "control": published.report.metrics["served"][SELECT_ON],
        "candidate": candidate.metrics["served"][SELECT_ON],
        "control recipe": published.report.chosen,
        "candidate recipe": candidate.chosen,
    }
    return found


def _line(event: dict[str, Any]) -> bytes:
    ts = datetime.fromtimestamp(event["ts"] / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return json.dumps({**event, "ts": ts[:-3] + "Z"}).encode()


def experiments_rows(n_events: int, data: Path) -> tuple[list[Row], list[str]]:
    """The experiments section: each real set present and the generated shop."""
    sets, notes = data_sets(n_events, data)
    rows: list[Row] = []
    lines: list[str] = []
    for found in sets:
        with tempfile.TemporaryDirectory(prefix="recs-bench-experiments-") as tmp:
            result = _replayed(found, Path(tmp))
        arms, offline = result["arms"], result["offline"]
        rows.append(
            Row(
                f"experiments, {found.name}: click-through of the candidate "
                f"({offline['candidate recipe']}), half the shoppers, k={_K}",
                arms["candidate"]["click-through"]["rate"],
                f"control ({offline['control recipe']}), the other half",
                arms["control"]["click-through"]["rate"],
                unit="share",
            )
        )
        d = result["differences"]["click-through"]
        same = (d["estimate"] > 0) == (offline["candidate"] > offline["control"])
        direction = "agrees with" if same else "goes against"
        if result["verdict"] not in ("candidate-wins", "candidate-loses"):
            direction += " (by noise: its difference is not clear)"
        lines.append(
            f"{found.name}: {arms['control']['shoppers']:,} and "
            f"{arms['candidate']['shoppers']:,} shoppers; conversion "
            f"{arms['control']['conversion']['rate']:.4f} and "
            f"{arms['candidate']['conversion']['rate']:.4f}; {result['says']}. Offline NDCG@10 "
            f"{offline['control']:.4f} and {offline['candidate']:.4f}; the replay's direction "
            f"{direction} the offline one."
        )
    return rows, [*lines, *notes]
