"""Quality on real shops: what `recs` serves, beside peers measured in the same run.

Each data set is cut on global time. Everything before the cut goes through what a user
runs, with no flags: `recs import` (the Personalize CSV as it comes, and its items file),
`recs etl`, `recs train` and `recs publish`. Every user with events on both sides of the
cut is then asked for 25 items through the serving recommender, in process (the batch row
from benchmarks import END
from the online store, or the fallback the API would give), and scored on what they did
after the cut, repeats counted. The peers train on the same curated events:

- popularity over the last 30 days before the cut;
- repeat then popularity: each user's own most-bought (most-touched) items, then popular;
- implicit's ALS and BPR at their defaults (binary interactions), each with the repeat
  policy that suits the data set: items the user has touched left out (`recommend`'s
  default) or allowed, whichever scores better on a validation split (the newest 10% of the
  training events), which the table says;
- EASE, its lambda and repeat policy chosen on the same validation split;
- TIFU-KNN (Hu et al., SIGIR 2020) and UP-CF@r (Faggioli et al., UMAP 2020), the strongest
  published methods for shoppers who buy again (`benchmarks/basket_peers.py`), each with its
  setting and repeat policy chosen on the same validation split;
- a learned second stage: the candidates of the user's own items, item-kNN and popularity,
  reranked by a LightGBM lambdarank model over 21 features, trained on label windows at the
  end of the training period (`benchmarks/reranker.py`), its rounds chosen on the same
  validation split. The notes give its ratio to what recs serves.

Relevance is binary, as in Personalize's metrics and recs' gate: an item a user touched after
the cut counts once, however often they bought it. Graded by how often (each purchase
moment a unit of gain), the same answers score lower on a shop of rebuyers: on online retail
repeat-then-popularity scores NDCG@10 0.426 binary and 0.378 graded. Both are right for what
they measure; this table measures the binary one. Each table also scores every answer on the
items its user had never touched (discovery), and gives each model's ratio to repeat then
popularity with its interval.

Related items are scored on what shoppers looked at next (`benchmarks/related.py`).

The replay feeds the held-out events of a sample of users, one by one and in time order,
to the serving recommender (its recent-history store is the API's SQLite event log), and
scores the next item each time: realtime answers (new events folded in) beside the same
model's batch answers alone.

Data: `../shared/data/online-retail` (UCI Online Retail, CC BY 4.0) and
`../shared/data/movielens-100k` (GroupLens MovieLens 100K: research use only, fetch it from
grouplens.org), in Personalize's CSV layout; a set that is missing is skipped and the report
says so. The generated shop is always there.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import scipy.sparse as sp

from benchmarks.datasets import DataSet, _csv_table, data_sets
from benchmarks.foundation import Row
from benchmarks.peers import RERANKER, peers
from benchmarks.related import K as RELATED_K
from benchmarks.related import peers as related_peers
from benchmarks.related import queries as related_queries
from benchmarks.related import scored as related_scored
from common.contract import parse_event
from training.data import Interactions, Split, unseen_truth
from training.metrics import K, evaluate
from training.tuning import SELECT_ON, Choice

if TYPE_CHECKING:
    from common.lake import LocalLake
    from serving.recommend import Recommender
    from training.pipeline import TrainOptions, TrainReport

Floats64 = npt.NDArray[np.float64]
#: Users and events replayed per data set.
REPLAY_USERS: Final = 300
REPLAY_EVENTS_PER_USER: Final = 30


@dataclass
class Served:
    """A data set trained and published under `root`, and the recommender over it."""

    log: Interactions
    truth: sp.csr_matrix
    users: npt.NDArray[np.int64]
    answers: npt.NDArray[np.int64]
    #: What each user gets with `filter=not-seen`: only items they never touched.
    discovery: npt.NDArray[np.int64]
    sources: dict[str, int]
    chosen: str
    approved: bool
    train_s: float
    replay: tuple[float, float, int]
    tuning: Choice
    #: Related-items queries (asked, sought) and what recs served for each asked item.
    related: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], dict[int, list[int]]]
    #: Each item's category, as the lake curated it.
    categories: dict[str, str]


def pre_cut_csv(table: pa.Table, cut_ms: int, path: Path) -> None:
    before = table.filter(pc.less(table["ts_ms"], cut_ms))
    pacsv.write_csv(
        pa.table(
            {
                "USER_ID": before["user_id"],
                "ITEM_ID": before["item_id"],
                "TIMESTAMP": pc.divide(before["ts_ms"], 1000),
                "EVENT_TYPE": before["event_type"],
            }
        ),
        path,
    )


def _truth(log: Interactions, after: pa.Table) -> tuple[npt.NDArray[np.int64], sp.csr_matrix]:
    """The users known before the cut who came back, and the items they touched after it.

    Items first seen after the cut count too (as columns past the trained catalog): nobody
    can recommend them, and leaving them out would flatter every model.
    """
    user_at = {u: i for i, u in enumerate(log.user_ids.tolist())}
    item_at = {u: i for i, u in enumerate(log.item_ids.tolist())}
    pairs: set[tuple[int, int]] = set()
    for user, item in zip(after["user_id"].to_pylist(), after["item_id"].to_pylist(), strict=True):
        if user in user_at:
            pairs.add((user_at[user], item_at.setdefault(item, len(item_at))))
    users = np.array(sorted({u for u, _ in pairs}), dtype=np.int64)
    row_of = {u: r for r, u in enumerate(users.tolist())}
    rows = np.array([row_of[u] for u, _ in pairs], dtype=np.int64)
    cols = np.array([i for _, i in pairs], dtype=np.int64)
    truth = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), len(item_at))
    )
    return users, truth


@dataclass
class Published:
    """A data set's events before its cut, imported, curated, trained and published."""

    lake: LocalLake
    report: TrainReport
    recommender: Recommender
    train_s: float


def publish_before_cut(data: DataSet, root: Path, options: TrainOptions | None = None) -> Published:
    """Import, curate, train and publish the events before the cut, under `root`, and the
    recommender that serves them (with an empty event log: no news after the cut)."""
    from common.lake import LocalLake
    from etl.job import run_etl
    from ingestion.importer import import_files
    from ingestion.sinks import EventLog
    from serving.publish import publish
    from serving.recommend import LiveModel, Recommender
    from serving.store import SQLiteStore
    from training.pipeline import train

    lake = LocalLake(root / "lake")
    csv = root / "interactions.csv"
    pre_cut_csv(data.table, int(data.cut.timestamp() * 1000), csv)
    import_files(
        lake,
        interactions=csv,
        items=data.items_file(root),
        options=data.import_options(),
        now=data.cut,
    )
    run_etl(lake, now=data.cut)
    started = time.perf_counter()
    report = train(lake, options, now=data.cut)
    train_s = time.perf_counter() - started
    store = SQLiteStore(root / "store.sqlite3")
    publish(lake, store, report.version, force=not report.approved)
    recommender = Recommender(LiveModel(lake, store), store, EventLog(root / "empty.sqlite3"))
    return Published(lake, report, recommender, train_s)


def serve(data: DataSet, root: Path) -> Served:
    """Import, curate, train and publish the events before the cut; ask for every user."""
    from training.data import item_categories, load_events

    cut_ms = int(data.cut.timestamp() * 1000)
    published = publish_before_cut(data, root)
    lake, report, recommender = published.lake, published.report, published.recommender
    train_s = published.train_s
    log = load_events(lake)
    after = data.table.filter(pc.greater_equal(data.table["ts_ms"], cut_ms))
    users, truth = _truth(log, after)
    item_at = {u: i for i, u in enumerate(log.item_ids.tolist())}
    answers = np.full((len(users), K), -1, dtype=np.int64)
    discovery = np.full((len(users), K), -1, dtype=np.int64)
    sources: dict[str, int] = {}
    for row, user in enumerate(log.user_ids[users].tolist()):
        answer = recommender.personalized(user, K)
        sources[answer.source] = sources.get(answer.source, 0) + 1
        codes = [item_at[i] for i, _ in answer.items]
        answers[row, : len(codes)] = codes
        codes = [item_at[i] for i, _ in recommender.personalized(user, K, not_seen=True).items]
        discovery[row, : len(codes)] = codes
    replay = _replay(recommender, root, log, after, users)
    asked, sought = related_queries(log, after)
    related: dict[int, list[int]] = {}
    for code in np.unique(asked).tolist():
        found = recommender.related(str(log.item_ids[code]), RELATED_K).items
        related[code] = [item_at[i] for i, _ in found if i in item_at]
    assert report.tuning is not None
    return Served(
        log,
        truth,
        users,
        answers,
        discovery,
        sources,
        report.chosen,
        report.approved,
        train_s,
        replay,
        report.tuning,
        (asked, sought, related),
        item_categories(lake),
    )


def ceiling(served: Served, cut_ms: int) -> tuple[float, str]:
    """NDCG@10 of the blend `recs train` can serve when its weights and repeat policy are
    chosen on the scored period itself: the most tuning could ever reach with the chosen
    recipe and half-life. An upper bound that cheats, not a result; it says how much of a
    gap to a peer better tuning could close."""
    from common.progress import quiet
    from training.data import DEFAULT_WEIGHTS
    from training.tuning import fresh, tune_blend
    from training.validation import Fitted, Fold

    log, choice = served.log, served.tuning
    history = log.history(DEFAULT_WEIGHTS, None, choice.half_life_days)
    matrix = history.weight_matrix(log.n_items)
    recipe = fresh(choice.recipe).fit(matrix) if choice.recipe is not None else None
    split = Split(
        np.ones(len(log), dtype=bool), served.users.astype(np.int32), served.truth, cut_ms
    )
    fold = Fold(split, served.users, served.truth)
    blend, value, _ = tune_blend(log, [fold], [Fitted(history, matrix, recipe)], "auto", quiet)
    return value, f"repeats {blend.repeats}, {blend.describe()}"


def _replay(
    batch_only: Recommender,
    root: Path,
    log: Interactions,
    after: pa.Table,
    users: npt.NDArray[np.int64],
) -> tuple[float, float, int]:
    """NDCG@10 of the next item, realtime and batch-only, over the replayed events."""
    from common.lake import LocalLake
    from ingestion.sinks import EventLog
    from serving.recommend import LiveModel, Recommender
    from serving.store import SQLiteStore

    lake, store = LocalLake(root / "lake"), SQLiteStore(root / "store.sqlite3")
    events_log = EventLog(root / "replay.sqlite3")
    realtime = Recommender(LiveModel(lake, store), store, events_log)
    rng = np.random.default_rng(42)
    chosen = set(
        log.user_ids[rng.choice(users, size=min(REPLAY_USERS, len(users)), replace=False)].tolist()
    )
    ordered = after.filter(pc.is_in(after["user_id"], value_set=pa.array(sorted(chosen))))
    ordered = ordered.sort_by([("user_id", "ascending"), ("ts_ms", "ascending")])
    gains = {"realtime": 0.0, "batch": 0.0}
    scored = 0
    per_user: dict[str, int] = {}
    for user, item, kind, ts in zip(
        *(ordered[c].to_pylist() for c in ("user_id", "item_id", "event_type", "ts_ms")),
        strict=True,
    ):
        if per_user.get(user, 0) >= REPLAY_EVENTS_PER_USER:
            continue
        per_user[user] = per_user.get(user, 0) + 1
        for name, recommender in (("realtime", realtime), ("batch", batch_only)):
            answer = recommender.personalized(user, 10)
            ids = [i for i, _ in answer.items]
            if item in ids:
                gains[name] += 1.0 / np.log2(ids.index(item) + 2)
        scored += 1
        event = parse_event(
            {
                "userId": user,
                "itemId": item,
                "event_type": kind,
                "ts": datetime.fromtimestamp(ts / 1000, UTC).isoformat(),
            },
            history=True,
        )
        events_log.append([event])
    events_log.close()
    return gains["realtime"] / max(1, scored), gains["batch"] / max(1, scored), scored


BASELINE: Final = "repeat then popularity"


def with_room(
    answers: npt.NDArray[np.int64], fresh: npt.NDArray[np.int64], places: int, k: int = 10
) -> npt.NDArray[np.int64]:
    """Each list's first k with its last `places` given to the best of `fresh` that the list
    does not already hold; what follows is the rest of the list."""
    mixed = np.full_like(answers, -1)
    for row in range(len(answers)):
        own = [int(i) for i in answers[row] if i >= 0]
        new = [int(i) for i in fresh[row] if i >= 0 and i not in own[: k - places]][:places]
        first = own[: k - places] + new
        rest = [i for i in own if i not in first]
        kept = (first + rest)[: answers.shape[1]]
        mixed[row, : len(kept)] = kept
    return mixed


def per_user_ndcg(best: npt.NDArray[np.int64], truth: sp.csr_matrix, k: int = 10) -> Floats64:
    """Each user's NDCG@k (users with an empty truth left out, as `evaluate` does)."""
    from training.metrics import user_ndcg

    return user_ndcg(best, truth, k)


def ratio_interval(ours: Floats64, peer: Floats64, draws: int = 2000) -> tuple[float, float]:
    """A 95% interval of mean(ours) / mean(peer), by a paired bootstrap over users."""
    rng = np.random.default_rng(7)
    picks = rng.integers(0, len(ours), size=(draws, len(ours)))
    ratios = ours[picks].mean(axis=1) / np.maximum(peer[picks].mean(axis=1), 1e-12)
    low, high = np.quantile(ratios, [0.025, 0.975])
    return float(low), float(high)


def quality_rows(data: DataSet) -> tuple[list[Row], list[str]]:
    """One data set: ours served beside every peer, and the replay."""
    with tempfile.TemporaryDirectory(prefix="recs-bench-quality-") as tmp:
        served = serve(data, Path(tmp))
    log, truth, users = served.log, served.truth, served.users
    cut_ms = int(data.cut.timestamp() * 1000)
    started = time.perf_counter()
    ranked, detail = peers(log, users, cut_ms)
    peers_s = time.perf_counter() - started
    results = {name: evaluate(best, truth) for name, best in ranked.items()}
    ours = evaluate(served.answers, truth)
    best_peer = max(results, key=lambda name: results[name][SELECT_ON])
    # Each answer's per-user NDCG@10, for the paired intervals.
    mine = per_user_ndcg(served.answers, truth)
    per_user = {name: per_user_ndcg(best, truth) for name, best in ranked.items()}
    low, high = ratio_interval(mine, per_user[best_peer])
    everything = np.ones(len(log), dtype=bool)
    unseen = unseen_truth(log, Split(everything, users.astype(np.int32), truth))
    realtime, batch, replayed = served.replay
    best_possible, best_blend = ceiling(served, cut_ms)
    rows = [
        Row(
            f"{data.name}: NDCG@10 of what recs serves (no flags) vs the best peer",
            ours[SELECT_ON] * 1000,
            best_peer,
            results[best_peer][SELECT_ON] * 1000,
            unit="x1000",
        ),
        Row(
            f"{data.name}: NDCG@10 ceiling, recs' blend tuned on the scored period itself",
            best_possible * 1000,
            best_peer,
            results[best_peer][SELECT_ON] * 1000,
            unit="x1000",
        ),
        Row(
            f"{data.name}: recall@20 of what recs serves vs {best_peer}",
            ours["recall_at_20"] * 1000,
            best_peer,
            results[best_peer]["recall_at_20"] * 1000,
            unit="x1000",
        ),
        Row(
            f"{data.name}: replay, NDCG@10 of the next item, realtime answers",
            realtime * 1000,
            "the same model's batch answers alone",
            batch * 1000,
            unit="x1000",
        ),
    ]
    popular = "popularity, last 30 days"
    rows.append(
        Row(
            f"{data.name}: NDCG@10 on items new to each user, `filter=not-seen` vs popularity",
            evaluate(served.discovery, unseen)[SELECT_ON] * 1000,
            popular,
            evaluate(ranked[popular], unseen)[SELECT_ON] * 1000,
            unit="x1000",
        )
    )
    related_rows, related_notes = _related(served, data.name)
    rows += related_rows
    sources = ", ".join(f"{n} {c:,}" for n, c in sorted(served.sources.items()))
    gate = (
        "approved by its gate"
        if served.approved
        else "kept as a candidate by its gate, published with --force"
    )
    table = [
        f"{data.name} ({data.note}): {len(log):,} interactions before the cut, "
        f"{log.n_users:,} users, {log.n_items:,} items; {len(users):,} users scored on "
        f"{int(truth.nnz):,} (user, item) pairs after it. recs chose {served.chosen} "
        f"({gate}); "
        f"`recs train` took {served.train_s:.0f} s; answers by source: {sources}. "
        f"Replay: {replayed:,} events of up to {REPLAY_USERS} users. Peers took {peers_s:.0f} s. "
        f"NDCG@10 ratio to {best_peer}: {ours[SELECT_ON] / results[best_peer][SELECT_ON]:.2f}, "
        f"95% interval {low:.2f} to {high:.2f} (paired bootstrap over the scored users). "
        f"Ceiling: the same recipe and half-life with the blend chosen on the scored period "
        f"itself ({best_blend}) reaches NDCG@10 {best_possible:.4f}, "
        f"{best_possible / results[best_peer][SELECT_ON]:.2f}x {best_peer}: what better "
        "tuning of this blend could at most reach.",
        "",
        f"NDCG@10 on unseen items scores each answer only on items its user had never touched "
        f"before the cut ({int(unseen.nnz):,} of the pairs). The last column is each model's "
        f"NDCG@10 over {BASELINE}'s, with its 95% paired bootstrap interval.",
        "",
        "| model | NDCG@10 | NDCG@10 on unseen items | recall@20 | MRR@25 | coverage "
        f"| ratio to {BASELINE} [95%] |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    baseline = per_user[BASELINE]
    discovered = evaluate(served.discovery, truth)
    for name, best, m, gains in [
        ("**recs, served**", served.answers, ours, mine),
        (
            "recs, `filter=not-seen` (only items new to the user)",
            served.discovery,
            discovered,
            per_user_ndcg(served.discovery, truth),
        ),
        *((n, ranked[n], results[n], per_user[n]) for n in results),
    ]:
        extra = f" ({detail[name]})" if name in detail else ""
        low, high = ratio_interval(gains, baseline)
        ratio = gains.mean() / max(baseline.mean(), 1e-12)
        table.append(
            f"| {name}{extra} | {m[SELECT_ON]:.4f} | {evaluate(best, unseen)[SELECT_ON]:.4f} | "
            f"{m['recall_at_20']:.4f} | {m['mean_reciprocal_rank_at_25']:.4f} | "
            f"{m['coverage']:.3f} | {ratio:.2f} [{low:.2f}, {high:.2f}] |"
        )
    baseline_mean = max(baseline.mean(), 1e-12)
    table.append("")
    for places in (1, 3):
        mixed = with_room(served.answers, served.discovery, places)
        gains = per_user_ndcg(mixed, truth)
        low, high = ratio_interval(gains, mine)
        table.append(
            f"Room for unseen items: the served list with its last {places} of the first 10 places "
            f"given to `filter=not-seen`'s best scores NDCG@10 {gains.mean():.4f} "
            f"({gains.mean() / max(mine.mean(), 1e-12):.2f}x what recs serves, 95% interval "
            f"{low:.2f} to {high:.2f}; {gains.mean() / baseline_mean:.2f}x {BASELINE}) and "
            f"{evaluate(mixed, unseen)[SELECT_ON]:.4f} on unseen items."
        )
    if RERANKER in per_user:
        learned = per_user[RERANKER]
        low, high = ratio_interval(learned, mine)
        over = learned.mean() / max(mine.mean(), 1e-12)
        table += [
            "",
            f"The learned peer over what recs serves: {over:.2f}, 95% interval {low:.2f} to "
            f"{high:.2f} (paired bootstrap over the scored users).",
        ]
    return rows, [*table, "", *related_notes]


def _related(served: Served, name: str) -> tuple[list[Row], list[str]]:
    """Related items: what recs serves beside each peer, on the next-item queries."""
    asked, sought, ours = served.related
    if not len(asked):
        return [], ["Related items: no shopper moved from one known item to another on a day "
                    "after the cut, so there is nothing to score."]  # fmt: skip
    started = time.perf_counter()
    lists = related_peers(served.log, asked, served.categories)
    peers_s = time.perf_counter() - started
    gains = {name: related_scored(found, asked, sought) for name, found in lists.items()}
    mine = related_scored(ours, asked, sought)
    best = max(gains, key=lambda name: gains[name].mean())
    low, high = ratio_interval(mine, gains[best])
    row = Row(
        f"{name}: related items, NDCG@10 of the next item viewed vs the best peer",
        mine.mean() * 1000,
        best,
        gains[best].mean() * 1000,
        unit="x1000",
    )
    notes = [
        f"Related items on {name}: {len(asked):,} queries (a shopper's item, then the next "
        f"different item they touched that day, after the cut) over {len(np.unique(asked)):,} "
        f"asked items. Ratio to {best}: {mine.mean() / max(gains[best].mean(), 1e-12):.2f}, 95% "
        f"interval {low:.2f} to {high:.2f} (paired bootstrap over the queries). Peers took "
        f"{peers_s:.0f} s.",
        "",
        "| related items | NDCG@10 | hit rate@10 |",
        "|---|---:|---:|",
        f"| **recs, served** | {mine.mean():.4f} | {(mine > 0).mean():.4f} |",
        *(f"| {n} | {g.mean():.4f} | {(g > 0).mean():.4f} |" for n, g in gains.items()),
    ]
    return [row], notes


GOAL: Final = (
    "Goals: on online retail, NDCG@10 of what recs serves at least 1.15x repeat then "
    "popularity and 1.02x the better of TIFU-KNN and UP-CF@r, the interval's lower end above "
    "1; on MovieLens 100K and the generated shop, never below the best peer's point estimate, "
    "and on the generated shop at least 1.05x; related items at least 1.10x the best "
    "related-items peer; realtime answers beating batch-only ones in the replay."
)


def quality(n_events: int, data: Path, csv: Path | None = None) -> tuple[list[Row], list[str]]:
    """The quality section: each real set present, the generated shop, and a CSV if given."""
    sets, notes = data_sets(n_events, data)
    if csv is not None:
        table = _csv_table(csv)
        times = np.sort(table["ts_ms"].to_numpy())
        cut = datetime.fromtimestamp(int(times[int(len(times) * 0.9)]) / 1000, UTC)
        sets.append(DataSet(csv.name, table, cut, None, "given with --interactions-csv"))
    rows: list[Row] = []
    tables: list[str] = [GOAL, ""]
    for found in sets:
        more_rows, more_notes = quality_rows(found)
        rows += more_rows
        tables += [*more_notes, ""]
    return rows, [*tables, *notes]
