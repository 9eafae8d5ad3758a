"""What the demo storefront and the ops page show, read from the lake and the server.

Everything here reads what the stages wrote, through their own readers: the curated tables
through `etl.sql` (DuckDB views), model versions through `training.versions`, pipeline runs
through `orchestration.runs`, quarantine through its JSON lines. Nothing writes.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from common.lake import Lake
from common.layout import QUARANTINE, import_taken

#: How long a worker keeps what it read from the lake before reading it again.
CACHE_S: Final = 30.0
#: How many request durations the latency figures are taken over.
WINDOW: Final = 10_000
T = TypeVar("T")


class Cached:
    """One value per name, read again once it is `CACHE_S` old."""

    def __init__(self, ttl_s: float = CACHE_S) -> None:
        self.ttl_s = ttl_s
        self._values: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, name: str, read: Callable[[], T]) -> T:
        """The cached value of `name`, or a fresh `read()`."""
        with self._lock:
            found = self._values.get(name)
            if found is not None and time.monotonic() - found[0] < self.ttl_s:
                value: T = found[1]
                return value
        value = read()
        with self._lock:
            self._values[name] = (time.monotonic(), value)
        return value


@dataclass
class Counters:
    """This worker's own API counters: request durations and answers by status."""

    durations_ms: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    statuses: Counter[int] = field(default_factory=Counter)
    started: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int, ms: float) -> None:
        """One API request's answer and duration."""
        with self._lock:
            self.durations_ms.append(ms)
            self.statuses[status] += 1

    def summary(self) -> dict[str, Any]:
        """p50 and p99 over the last requests, and counts by status class."""
        with self._lock:
            durations = sorted(self.durations_ms)
            statuses = dict(self.statuses)

        def percentile(share: float) -> float | None:
            if not durations:
                return None
            return round(durations[min(len(durations) - 1, int(share * len(durations)))], 2)

        total = sum(statuses.values())
        return {
            "requests": total,
            "p50Ms": percentile(0.50),
            "p99Ms": percentile(0.99),
            "over": len(durations),
            "errors4xx": sum(n for s, n in statuses.items() if 400 <= s < 500),
            "errors5xx": sum(n for s, n in statuses.items() if s >= 500),
            "byStatus": {str(s): n for s, n in sorted(statuses.items())},
            "sinceEpochS": round(self.started),
        }


def _rows(lake: Lake, sql: str, *params: Any) -> list[dict[str, Any]]:
    from etl.sql import connect

    con = connect(lake)
    try:
        cursor = con.execute(sql, list(params))
        names = [d[0] for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def catalog(lake: Lake, *, per_category: int = 12, categories: int = 12) -> dict[str, Any]:
    """The storefront's shelves (each category's most interacted-with items, with titles) and
    its known shoppers (the most active users)."""
    items = _rows(
        lake,
        """
        WITH counts AS (SELECT item_id, count(*) AS n FROM interactions GROUP BY item_id),
        ranked AS (
            SELECT i.item_id, coalesce(i.title, i.item_id || coalesce(' · ' || i.category, ''))
                   AS title,
                   coalesce(i.category, 'Other') AS category, i.price, coalesce(c.n, 0) AS n,
                   row_number() OVER (PARTITION BY coalesce(i.category, 'Other')
                                      ORDER BY coalesce(c.n, 0) DESC, i.item_id) AS place
            FROM items i LEFT JOIN counts c USING (item_id)
            WHERE i.active IS NOT false
        )
        SELECT * FROM ranked WHERE place <= ? ORDER BY category, place
        """,
        per_category,
    )
    shelves: dict[str, list[dict[str, Any]]] = {}
    weight: Counter[str] = Counter()
    for row in items:
        shelves.setdefault(row["category"], []).append(
            {"id": row["item_id"], "title": row["title"], "price": row["price"]}
        )
        weight[row["category"]] += int(row["n"])
    chosen = [name for name, _ in weight.most_common(categories)]
    users = _rows(
        lake,
        "SELECT user_id, count(*) AS n FROM interactions GROUP BY user_id "
        "ORDER BY n DESC, user_id LIMIT 24",
    )
    [counted] = _rows(
        lake,
        "SELECT count(*) AS items, count(*) FILTER (WHERE title IS NULL) AS untitled FROM items",
    )
    return {
        "categories": [{"name": name, "items": shelves[name]} for name in chosen],
        "new": _newest(lake, per_category),
        "users": [row["user_id"] for row in users],
        # A catalog imported without a title column shows ids; the page says how to add them.
        "untitled": int(counted["untitled"] or 0),
        "items": int(counted["items"] or 0),
    }


def _newest(lake: Lake, n: int) -> list[dict[str, Any]]:
    """The catalog's newest items that nobody has touched yet (by creation, else by first
    listing): the ones only their attributes can recommend (docs/new-items.md)."""
    rows = _rows(
        lake,
        """
        SELECT i.item_id, i.title, i.category, i.price
        FROM items i
        WHERE i.active IS NOT false
          AND NOT EXISTS (SELECT 1 FROM interactions x WHERE x.item_id = i.item_id)
        ORDER BY coalesce(i.created_at, i.first_seen_at) DESC, i.item_id
        LIMIT ?
        """,
        n,
    )
    return [
        {
            "id": r["item_id"],
            "title": r["title"] or _untitled(r["item_id"], r["category"]),
            "category": r["category"],
            "price": r["price"],
        }
        for r in rows
    ]


def items(lake: Lake, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Titles, categories and prices of these items (unknown ids are left out)."""
    if not ids:
        return {}
    rows = _rows(
        lake,
        "SELECT item_id, title, category, price FROM items WHERE list_contains(?, item_id)",
        ids,
    )
    return {
        row["item_id"]: {
            "title": row["title"] or _untitled(row["item_id"], row["category"]),
            "category": row["category"],
            "price": row["price"],
        }
        for row in rows
    }


def _untitled(item_id: str, category: str | None) -> str:
    """What an item without a title is called: its id, and its category where it has one."""
    return f"{item_id} · {category}" if category else item_id


def quarantine(lake: Lake, *, newest: int = 20, reasons: int = 5) -> dict[str, Any]:
    """How many records each quarantine holds (counted over its newest files) and the latest
    reasons, newest first."""
    # quarantine/<zone>/<run>/...: the run id leads with its time, so it orders them.
    keys = sorted(
        (k for k in lake.list(f"{QUARANTINE}/") if k.endswith(".jsonl")),
        key=lambda k: (k.split("/")[2:3], k),
    )
    by_zone: Counter[str] = Counter({key.split("/")[1]: 0 for key in keys})
    by_run: Counter[tuple[str, str]] = Counter()
    latest: list[dict[str, Any]] = []
    for key in reversed(keys[-newest:]):
        lines = lake.read_bytes(key).decode("utf-8", "replace").splitlines()
        zone = key.split("/")[1]
        by_zone[zone] += len(lines)
        by_run[(zone, key.split("/")[2])] += len(lines)
        for line in reversed(lines):
            if len(latest) >= reasons:
                break
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            # Imports before 0.2 wrote their refusals' reason as `error`.
            reason = record.get("reason", record.get("error", ""))
            latest.append({"zone": zone, "reason": str(reason), "file": key})
    return {
        "files": len(keys),
        "countedFiles": min(newest, len(keys)),
        "byZone": dict(sorted(by_zone.items())),
        "runs": [
            {"zone": zone, "run": run, "refused": n, "taken": _taken(lake, zone, run)}
            for (zone, run), n in sorted(by_run.items(), key=lambda e: e[0][1], reverse=True)
        ],
        "latest": latest,
    }


def _taken(lake: Lake, zone: str, run: str) -> int:
    """How many of an import run's refused interactions a later import took in."""
    if zone != "import":
        return 0
    try:
        found = json.loads(lake.read_bytes(import_taken(run)))
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    return int(found.get("rows", 0)) if isinstance(found, dict) else 0


def _current(v: Any) -> list[str]:
    """The gate's reasons as they still hold: "no model is in production yet" was true when
    the version was judged, and stale once it (or any version) is in production."""
    from training.gate import NO_PRODUCTION

    if v.state != "production":
        return list(v.reasons)
    reasons = [r.replace(f"; {NO_PRODUCTION}", "") for r in v.reasons]
    return [r for r in reasons if r and r != NO_PRODUCTION]


def _version(v: Any) -> dict[str, Any] | None:
    """A model version as the ops page shows it."""
    if v is None:
        return None
    return {
        "version": v.version,
        "state": v.state,
        "backend": v.backend,
        "chosen": v.chosen,
        "ndcg10": v.ndcg10,
        "popularityNdcg10": v.popularity_ndcg10,
        "ownHistoryNdcg10": v.own_history_ndcg10,
        "reasons": _current(v),
        "trainedAt": v.manifest.get("created_at"),
    }


def experiment(lake: Lake) -> dict[str, Any] | None:
    """The last experiment's outcome: now, while it runs; as it stood when it stopped."""
    from orchestration.outcomes import outcome
    from serving.experiment import records

    found = records(lake)
    if not found:
        return None
    last, record = found[-1]
    kept = record.get("outcome")
    if last.stopped_at is not None and isinstance(kept, dict):
        return kept
    return outcome(lake, last).body()


def ops(lake: Lake, *, days: int = 14, top: int = 10) -> dict[str, Any]:
    """The ops page's picture of the lake: production model, the last A/B experiment, runs,
    the funnel over the last `days` days that have events, top items over the last 7 such
    days, quarantine."""
    from orchestration.runs import last_runs, shown_status
    from training.versions import versions

    found = versions(lake)
    production = next((v for v in found if v.state == "production"), None)
    previous = None
    if production is not None:
        older = [v for v in found if v.version < production.version]
        previous = older[-1] if older else None

    runs = [
        {
            "runId": r.run_id,
            "status": shown_status(lake, r),
            "trainer": r.trainer,
            "startedAt": r.started_at,
            "finishedAt": r.finished_at,
            "steps": [
                {"name": s.name, "status": s.status, "seconds": s.seconds, "error": s.error}
                for s in r.steps
            ],
        }
        for r in last_runs(lake, 5)
    ]
    funnel = _rows(
        lake,
        """
        SELECT CAST(event_date AS VARCHAR) AS day,
               count(*) FILTER (WHERE event_type = 'view') AS views,
               count(*) FILTER (WHERE event_type = 'add_to_cart') AS carts,
               count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
               count(*) FILTER (WHERE recommendation_id IS NOT NULL) AS from_recommendations
        FROM interactions
        WHERE event_date IN (
            SELECT DISTINCT event_date FROM interactions ORDER BY event_date DESC LIMIT ?
        )
        GROUP BY 1 ORDER BY 1
        """,
        days,
    )
    top_items = _rows(
        lake,
        """
        SELECT i.item_id AS id, coalesce(it.title, i.item_id) AS title,
               count(*) FILTER (WHERE i.event_type = 'purchase') AS purchases,
               count(*) AS interactions
        FROM interactions i LEFT JOIN items it USING (item_id)
        WHERE i.event_date IN (
            SELECT DISTINCT event_date FROM interactions ORDER BY event_date DESC LIMIT 7
        )
        GROUP BY 1, 2 ORDER BY purchases DESC, interactions DESC, id LIMIT ?
        """,
        top,
    )
    return {
        "experiment": experiment(lake),
        "production": _version(production),
        "previous": _version(previous),
        "versions": len(found),
        "runs": runs,
        "funnel": funnel,
        "topItems": top_items,
        "quarantine": quarantine(lake),
    }
