"""The API over HTTP on loopback, for every recipe training can choose, beside a bare uvicorn
hello-world under the same server settings, and the Lambda handler's own time.

Setup (not timed): a generated shop of `ITEMS` items and `USERS` users is curated once; each
recipe (`RECIPES`) is trained on it by name (`recs train --recipe`, with the half-life and
repeat policy pinned) and published to a store of its own. EASE refuses catalogues over its
item limit, so it gets a shop of that many items.

Per recipe, `recs serve` runs with 1 worker and with one per core, each in its own process,
the load generator (`benchmarks.load`) in another:
- closed loop: `CONNECTIONS` keep-alive connections, back to back, for `SECONDS` per route;
- open loop (1 worker): `RATE` requests/s on schedule, latency from when each was due.

The routes: health; related (the published neighbours: batch); personalized for users the
model knows with nothing new (batch); and personalized for `SHOPPERS` users the model knows
who each posted events since (realtime: their history folded into the model per request).

The Lambda side (`benchmarks.lambda_handler`, a fresh process per recipe, with
`RECS_MODEL_USERS=store` as the Terraform sets it): the cold start (import, services, the
model's item side) and each route's warm handler time, beside a bare Powertools resolver
that answers `{"ok": true}` in the same way.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from benchmarks.foundation import Row

ITEMS: Final = 100_000
USERS: Final = 1_000_000
SHOPPERS: Final = 500
SECONDS: Final = 5.0
CONNECTIONS: Final = 32
RATE: Final = 500.0
#: What `recs train --recipe` accepts: each named recipe, and what `auto` chooses on this
#: shop (which may be history and trending alone, or a learned ranker's order).
RECIPES: Final = ("als", "item-knn", "ease", "auto")
ROUTES: Final = ("health", "related", "personalized (batch)", "personalized (realtime)")
#: The routes a published batch (or nothing) answers, whose goal is half the hello-world's.
CACHED: Final = ROUTES[:3]
INVOKES: Final = 2_000
END: Final = datetime(2026, 11, 1, tzinfo=UTC)
#: The README's performance lines, which `serving_rows` writes from the same run.
README: Final = Path("README.md")
README_START, README_STOP = "<!-- serving-bench:start -->\n", "<!-- serving-bench:end -->"

Figures = dict[str, float]


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RecipeRun:
    """One recipe's figures: per (route, workers) closed-loop, per route open-loop."""

    recipe: str
    items: int
    #: What the version serves, in training's words (`TrainReport.chosen`).
    served: str = ""
    closed: dict[tuple[str, int], Figures] = field(default_factory=dict)
    open: dict[str, Figures] = field(default_factory=dict)
    #: `benchmarks.lambda_handler`'s figures for this recipe's version.
    handler: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """What the tables call it: what it serves, and what was asked where that was auto."""
        return f"auto: {self.served}" if self.recipe == "auto" else self.served


@dataclass
class Measured:
    """Everything the report is built from."""

    workers: int
    users: int
    hello_closed: dict[int, Figures]
    hello_open: Figures
    handler_peer: dict[str, Any]
    events: Figures
    runs: list[RecipeRun]
    setup_s: float


def _shop(root: Path, items: int, users: int, events: int) -> Path:
    from common.lake import LocalLake
    from etl.job import run_etl
    from ingestion.generator import ShopSpec, generate_shop, write_catalog, write_raw

    lake = LocalLake(root)
    spec = ShopSpec(users=users, items=items, categories=50, days=30, events=events, seed=11,
                    end=END)  # fmt: skip
    shop = generate_shop(spec)
    write_raw(shop, lake)
    write_catalog(shop, lake)
    run_etl(lake, now=END)
    return root


def _publish(lake_root: Path, recipe: str, store: Path, minute: int) -> str:
    from common.lake import LocalLake
    from serving.publish import publish
    from serving.store import SQLiteStore
    from training.pipeline import TrainOptions, train

    lake = LocalLake(lake_root)
    # The half-life and repeat policy are pinned: the searches cost most of an hour at a
    # million users, and what serving computes per request does not depend on them.
    options = TrainOptions(recipe=recipe, half_life=None, repeats="exclude-purchased")
    # Each recipe's version gets its own name (a version is named by its training clock):
    # two trained at the same clock would write one version's files over the other's.
    report = train(lake, options, now=END + timedelta(minutes=minute))
    if recipe != "auto" and not report.chosen.startswith(recipe):
        raise RuntimeError(f"asked to train {recipe}, training chose {report.chosen}")
    publish(lake, SQLiteStore(store), report.version, force=True)
    return report.chosen


@contextmanager
def _server(command: list[str], port: int, env: Mapping[str, str], probe: str) -> Iterator[None]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(1_200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=1)
                break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.1)
        else:
            process.kill()
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"{' '.join(command)} did not start: {error[-2000:]}")
        yield
    finally:
        process.terminate()
        process.wait(timeout=60)


def _load(port: int, requests: list[str], mode: str, seconds: float) -> Figures:
    spec = {"host": "127.0.0.1", "port": port, "requests": requests, "mode": mode,
            "connections": CONNECTIONS, "seconds": seconds, "rate": RATE}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.load"],
        input=json.dumps(spec), capture_output=True, text=True, check=True,
    )  # fmt: skip
    figures: Figures = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def _get(path: str) -> str:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _post(path: str, body: str) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )


def _targets(items: int, users: int, rng: random.Random) -> dict[str, list[str]]:
    """Each route's request targets. Shoppers (realtime) and batch users are users the
    generated shop gave events (ids U1 ... U<users>); the benchmark checks what answered."""
    shoppers = [f"U{n}" for n in rng.sample(range(1, users + 1), min(SHOPPERS, users // 2))]
    taken = set(shoppers)
    picked = rng.sample(range(1, users + 1), min(5_000, users))
    batch = [u for u in (f"U{n}" for n in picked) if u not in taken]
    item_ids = [f"I{rng.randrange(1, items + 1)}" for _ in range(5_000)]
    return {
        "health": ["/v1/health"],
        "related": [f"/v1/recommendations/related?itemId={i}&k=10" for i in item_ids],
        "personalized (batch)": [
            f"/v1/recommendations/personalized?userId={u}&k=10" for u in batch
        ],
        "personalized (realtime)": [
            f"/v1/recommendations/personalized?userId={u}&k=10" for u in shoppers
        ],
        "_items": item_ids,
    }


def _post_shoppers(port: int, targets: dict[str, list[str]], rng: random.Random) -> None:
    """Each shopper posts 5 views, newer than the version's data: their answers turn realtime."""
    for target in targets["personalized (realtime)"]:
        user = target.split("userId=")[1].split("&")[0]
        body = json.dumps([{"userId": user, "itemId": i, "event_type": "view"}
                           for i in rng.sample(targets["_items"], 5)])  # fmt: skip
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/events", data=body.encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        urllib.request.urlopen(request).read()


def _handler_figures(env: Mapping[str, str], routes: Mapping[str, list[str]]) -> dict[str, Any]:
    spec = {"routes": routes, "invokes": INVOKES}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.lambda_handler"],
        input=json.dumps(spec), capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def _run_recipe(run: RecipeRun, env: dict[str, str], workers: int, seconds: float) -> None:
    rng = random.Random(5)
    targets = _targets(run.items, int(env["BENCH_USERS"]), rng)
    recs = str(Path(sys.executable).with_name("recs"))
    for count in sorted({1, workers}):
        port = free_port()
        serve = [recs, "serve", "--workers", str(count), "--port", str(port), "--log-level",
                 "WARNING"]  # fmt: skip
        with _server(serve, port, env, "/v1/health"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health") as answer:
                serving = json.loads(answer.read())["model"]["recipe"]
            if serving != run.served:
                raise RuntimeError(f"{run.recipe}'s store serves {serving}, not {run.served}")
            if count == 1:
                _post_shoppers(port, targets, rng)
            for route in ROUTES:
                requests = [_get(t) for t in targets[route]]
                run.closed[(route, count)] = _load(port, requests, "closed", seconds)
                if count == 1:
                    run.open[route] = _load(port, requests, "open", seconds)
    # As the Terraform deploys it: users' histories from the store's profile rows.
    lambda_env = {**env, "RECS_MODEL_USERS": "store"}
    run.handler = _handler_figures(lambda_env, {r: targets[r] for r in ROUTES})


def measure(
    events: int, *, items: int = ITEMS, users: int = USERS, seconds: float = SECONDS,
    recipes: tuple[str, ...] = RECIPES,
) -> Measured:  # fmt: skip
    """Publish each recipe, serve it, load it; see the module docstring."""
    from training.recipes import EASE

    workers = len(os.sched_getaffinity(0))
    runs: list[RecipeRun] = []
    with tempfile.TemporaryDirectory(prefix="recs-bench-serving-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        lakes = {"main": _shop(root / "lake", items, users, events)}
        ease_items = min(items, EASE.MAX_ITEMS)
        if "ease" in recipes and ease_items < items:
            lakes["ease"] = _shop(root / "lake-ease", ease_items, users, events)
        for minute, recipe in enumerate(recipes):
            lake = lakes["ease" if recipe == "ease" and "ease" in lakes else "main"]
            served = _publish(lake, recipe, root / f"store-{recipe}.sqlite3", minute)
            runs.append(RecipeRun(recipe, ease_items if recipe == "ease" else items, served))
        setup_s = time.perf_counter() - started
        for run in runs:
            lake = lakes["ease" if run.recipe == "ease" and "ease" in lakes else "main"]
            env = {**os.environ, "BENCH_USERS": str(users), "RECS_LAKE": str(lake),
                   "RECS_STORE": str(root / f"store-{run.recipe}.sqlite3"),
                   "RECS_EVENT_LOG": str(root / f"events-{run.recipe}.sqlite3"),
                   "RECS_IDEMPOTENCY_STORE": str(root / f"idem-{run.recipe}.sqlite3")}  # fmt: skip
            _run_recipe(run, env, workers, seconds)
        events_figures = _events_load(runs[0], env, seconds)
    hello_closed, hello_open = _hello(workers, seconds)
    peer = _handler_figures({**os.environ, "BENCH_PEER": "1"}, {"hello": ["/"]})
    return Measured(workers, users, hello_closed, hello_open, peer, events_figures, runs, setup_s)


def _events_load(run: RecipeRun, env: dict[str, str], seconds: float) -> Figures:
    """POST /v1/events, durable, 1 worker."""
    port = free_port()
    recs = str(Path(sys.executable).with_name("recs"))
    posts = [_post("/v1/events", json.dumps({"userId": f"load-{n % 2_000}", "itemId": f"I{n}",
                                              "event_type": "view"}))
             for n in range(1, 5_001)]  # fmt: skip
    serve = [recs, "serve", "--workers", "1", "--port", str(port), "--log-level", "WARNING"]
    with _server(serve, port, env, "/v1/health"):
        return _load(port, posts, "closed", seconds)


def _hello(workers: int, seconds: float) -> tuple[dict[int, Figures], Figures]:
    closed: dict[int, Figures] = {}
    opened: Figures = {}
    for count in sorted({1, workers}):
        port = free_port()
        hello = [sys.executable, "-m", "uvicorn", "benchmarks.hello:app", "--port", str(port),
                 "--workers", str(count), "--loop", "uvloop", "--http", "httptools",
                 "--no-access-log", "--log-level", "warning"]  # fmt: skip
        with _server(hello, port, os.environ, "/"):
            closed[count] = _load(port, [_get("/")], "closed", seconds)
            if count == 1:
                opened = _load(port, [_get("/")], "open", seconds)
    return closed, opened


def _worst(runs: list[RecipeRun], pick: Any) -> tuple[RecipeRun, float]:
    """The recipe whose figure `pick(run)` is lowest, and that figure."""
    figure, run = min(((pick(run), n) for n, run in enumerate(runs)), key=lambda p: p[0])
    return runs[run], figure


def _rows(m: Measured) -> list[Row]:
    hello = m.hello_closed
    rows = [
        Row(f"API personalized (realtime), {run.name}, {run.items:,} items, 1 worker: "
            "requests/s", run.closed[("personalized (realtime)", 1)]["rps"],
            "bare uvicorn hello-world, 1 worker", hello[1]["rps"], unit="req/s")
        for run in m.runs
    ]  # fmt: skip
    for route in CACHED:
        for workers in sorted({1, m.workers}):
            run, rps = _worst(m.runs, lambda r, k=(route, workers): r.closed[k]["rps"])
            rows.append(Row(f"API {route}, {workers} worker{'s' * (workers > 1)} (lowest: "
                            f"{run.name}): requests/s", rps,
                            f"bare uvicorn hello-world, {workers} worker{'s' * (workers > 1)}",
                            hello[workers]["rps"], unit="req/s"))  # fmt: skip
    run, p99 = _worst(m.runs, lambda r: -max(f["p99_ms"] for f in r.open.values()))
    rows.append(Row(f"API at {RATE:.0f} req/s, 1 worker: the worst p99 of any route and "
                    f"recipe ({run.name})", -p99, f"hello-world at {RATE:.0f} req/s",
                    m.hello_open["p99_ms"], unit="ms"))  # fmt: skip
    peer = m.handler_peer["routes"]["hello"]["p50_ms"]
    for label, routes in (("cached routes", CACHED), ("realtime", ROUTES[3:])):
        run, slow = _worst(m.runs, lambda r, rs=routes: -max(r.handler["routes"][x]["p50_ms"]
                                                             for x in rs))  # fmt: skip
        rows.append(Row(f"Lambda handler, warm invoke, {label}: the slowest p50 "
                        f"({run.name})", -slow, "bare Powertools resolver, {\"ok\": true}",
                        peer, unit="ms"))  # fmt: skip
    run, cold = _worst(m.runs, lambda r: -r.handler["cold_s"])
    rows.append(Row(f"Lambda cold start: import, services, model load, first answer, "
                    f"{m.users:,} users (slowest: {run.name}, {run.items:,} items)", -cold,
                    "bare Powertools resolver", m.handler_peer["cold_s"], unit="s"))  # fmt: skip
    return rows


def _table(m: Measured) -> list[str]:
    lines = [
        "| recipe | route | workers | requests/s | ratio to hello | p50 ms | p99 ms | "
        f"p99 ms at {RATE:.0f}/s | Lambda p50 ms | Lambda p99 ms | answered by |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in m.runs:
        for route in ROUTES:
            handler = run.handler["routes"][route]
            sources = ", ".join(
                f"{k} {v}" for k, v in sorted(handler["sources"].items()) if k != "None"
            )
            for workers in sorted({1, m.workers}):
                f = run.closed[(route, workers)]
                first = workers == 1
                lines.append(
                    f"| {run.name} | {route} | {workers} | {f['rps']:,.0f} | "
                    f"{f['rps'] / m.hello_closed[workers]['rps']:.2f} | {f['p50_ms']:.2f} | "
                    f"{f['p99_ms']:.2f} | "
                    + (f"{run.open[route]['p99_ms']:.2f} | {handler['p50_ms']:.3f} | "
                       f"{handler['p99_ms']:.3f} | {sources} |" if first else "| | | |")
                )  # fmt: skip
    for workers, f in sorted(m.hello_closed.items()):
        open_p99 = f"{m.hello_open['p99_ms']:.2f}" if workers == 1 else ""
        lines.append(f"| hello-world | / | {workers} | {f['rps']:,.0f} | 1.00 | "
                     f"{f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {open_p99} | | | |")  # fmt: skip
    return lines


def _goals(m: Measured) -> list[str]:
    """Each goal of issue 26, met or not, from the figures above."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    cached = min(run.closed[(r, w)]["rps"] / m.hello_closed[w]["rps"]
                 for run in m.runs for r in CACHED for w in m.hello_closed)  # fmt: skip
    realtime = min(run.closed[("personalized (realtime)", w)]["rps"] / m.hello_closed[w]["rps"]
                   for run in m.runs for w in m.hello_closed)  # fmt: skip
    p99 = max(f["p99_ms"] for run in m.runs for f in run.open.values())
    warm_cached = max(run.handler["routes"][r]["p50_ms"] for run in m.runs for r in CACHED)
    warm_realtime = max(run.handler["routes"][ROUTES[3]]["p50_ms"] for run in m.runs)
    cold = max(run.handler["cold_s"] for run in m.runs)
    return [
        "Goals (issue 26), from the figures above:",
        f"- cached routes at least 0.5x the hello-world's requests/s: lowest {cached:.2f}x, "
        f"{verdict(cached >= 0.5)};",
        f"- realtime personalized at least 0.25x: lowest {realtime:.2f}x, "
        f"{verdict(realtime >= 0.25)};",
        f"- p99 under 10 ms at {RATE:.0f} requests/s on every route and recipe: worst "
        f"{p99:.2f} ms, {verdict(p99 < 10)};",
        f"- a warm Lambda invoke under 1 ms on cached routes: slowest p50 {warm_cached:.3f} ms, "
        f"{verdict(warm_cached < 1)}; under 3 ms realtime: {warm_realtime:.3f} ms, "
        f"{verdict(warm_realtime < 3)};",
        f"- cold start under 1.5 s: slowest {cold:.2f} s, {verdict(cold < 1.5)}.",
    ]


def serving_report(m: Measured) -> tuple[list[Row], list[str]]:
    """The rows, the per-recipe table and the goals, from the measured figures."""
    lines = [
        f"Setup (not timed): a generated shop of {m.users:,} users, curated once; each recipe "
        f"trained by name (half-life and repeat policy pinned) and published to its own store, "
        f"in {m.setup_s:.0f} s in all. EASE's "
        "shop has as many items as EASE takes. Load: "
        f"{CONNECTIONS} keep-alive connections per route (closed loop), or {RATE:.0f} "
        "requests/s on schedule with latency from when each was due (open loop), from a "
        "load generator in its own process (benchmarks/load.py); it shares the machine "
        "with the server, so the hello-world's figure is also near the generator's ceiling.",
        "",
        *_table(m),
        "",
        "Lambda columns: the handler's own time per warm invoke in one process "
        "(benchmarks/lambda_handler.py), users' histories from the store as the Terraform "
        "deploys it, metrics on as on Lambda, tracing off (no X-Ray daemon here); "
        "`answered by` counts the sources of the first 50 answers. The bare "
        f"resolver answers in {m.handler_peer['routes']['hello']['p50_ms']:.3f} ms and "
        f"starts cold in {m.handler_peer['cold_s']:.2f} s.",
        f"Events (POST, durable, 1 worker): {m.events['rps']:,.0f} requests/s, p99 "
        f"{m.events['p99_ms']:.2f} ms.",
        "",
        *_goals(m),
        "",
        "The README's lines, from this run:",
        "",
        *(f"> {line}" for line in readme_lines(m)),
    ]
    return _rows(m), lines


def readme_lines(m: Measured) -> list[str]:
    """The README's performance lines: one worker's figures for the first recipe, its
    slowest realtime recipe, and the Lambda's, each beside its peer from the same run."""
    first = m.runs[0]
    slow, realtime = _worst(m.runs, lambda r: r.closed[("personalized (realtime)", 1)]["rps"])
    hello = m.hello_closed[1]["rps"]
    cached = [(route, first.closed[(route, 1)]["rps"]) for route in CACHED]
    peer = m.handler_peer["routes"]["hello"]["p50_ms"]
    return [
        f"On {m.workers} cores, one `recs serve` worker over {first.items:,} items and "
        f"{m.users:,} users ({first.name}) answers "
        + ", ".join(f"{route} at {rps:,.0f} requests/s" for route, rps in cached)
        + f", where a bare uvicorn hello-world answers {hello:,.0f} "
        f"({min(r for _, r in cached) / hello:.2f}x at the lowest). Realtime personalized "
        f"answers, the user's new events folded in, run at {realtime:,.0f} requests/s on "
        f"the slowest recipe ({slow.name}, {realtime / hello:.2f}x).",
        "On Lambda, a warm invoke takes "
        + ", ".join(
            f"{route} {first.handler['routes'][route]['p50_ms']:.2f} ms" for route in ROUTES
        )
        + f" of handler time at the median ({first.name}; a bare Powertools resolver: "
        f"{peer:.2f} ms), and a cold start "
        f"{max(r.handler['cold_s'] for r in m.runs):.2f} s at the slowest recipe. Every "
        "recipe's figures, and the goals met and missed, are in `docs/benchmarks.md`.",
    ]


def write_readme(lines: list[str], path: Path = README) -> None:
    """Put `lines` between the README's serving-bench markers."""
    text = path.read_text()
    head, rest = text.split(README_START, 1)
    path.write_text(head + README_START + "\n".join(lines) + "\n" + rest[rest.index(README_STOP) :])


def serving_rows(events: int) -> tuple[list[Row], list[str]]:
    """`python -m benchmarks`'s serving section; it also writes the README's lines."""
    measured = measure(events)
    write_readme(readme_lines(measured))
    return serving_report(measured)
