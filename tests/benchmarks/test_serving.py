"""`benchmarks.serving`: the report is what a hand calculation from the figures gives, and the
README's performance lines are the ones `make bench` wrote into docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

from benchmarks.serving import (
    README_START,
    README_STOP,
    ROUTES,
    Measured,
    RecipeRun,
    readme_lines,
    serving_report,
    write_readme,
)


def _figures(rps: float, p99: float = 4.0) -> dict[str, float]:
    return {"requests": rps * 5, "rps": rps, "p50_ms": 1.0, "p99_ms": p99, "errors": 0}


def _run(recipe: str, served: str, realtime_rps: float, cold: float) -> RecipeRun:
    run = RecipeRun(recipe, 1_000, served)
    for route in ROUTES:
        rps = realtime_rps if route == ROUTES[3] else 600.0
        run.closed[(route, 1)] = _figures(rps)
        run.closed[(route, 2)] = _figures(rps * 1.5)
        run.open[route] = _figures(500.0, p99=12.0 if recipe == "ease" else 3.0)
    run.handler = {
        "cold_s": cold,
        "routes": {
            route: {"p50_ms": 2.0 if route == ROUTES[3] else 0.5, "p99_ms": 3.0,
                    "sources": {"batch": 50}}
            for route in ROUTES
        },
    }  # fmt: skip
    return run


def _measured() -> Measured:
    return Measured(
        workers=2,
        users=10_000,
        hello_closed={1: _figures(1_000.0), 2: _figures(1_500.0)},
        hello_open=_figures(500.0, p99=2.0),
        handler_peer={"cold_s": 0.5, "routes": {"hello": {"p50_ms": 0.1, "p99_ms": 0.2}}},
        events=_figures(300.0),
        runs=[_run("als", "als (factors 64)", 200.0, 1.0), _run("ease", "ease", 300.0, 2.0)],
        setup_s=10.0,
    )


def test_the_rows_and_goals_are_the_figures_worked_by_hand() -> None:
    rows, lines = serving_report(_measured())
    realtime = [(r.what, r.ours, r.theirs) for r in rows[:2]]
    assert realtime == [
        ("API personalized (realtime), als (factors 64), 1,000 items, 1 worker: requests/s",
         200.0, 1_000.0),
        ("API personalized (realtime), ease, 1,000 items, 1 worker: requests/s", 300.0,
         1_000.0),
    ]  # fmt: skip
    p99 = next(r for r in rows if "worst p99" in r.what)
    assert (p99.ours, p99.theirs) == (12.0, 2.0)
    assert "(ease)" in p99.what
    cold = rows[-1]
    assert (cold.ours, cold.theirs) == (2.0, 0.5)
    goals = lines[lines.index("Goals (issue 26), from the figures above:") + 1 :]
    assert goals[0].endswith("lowest 0.60x, met;")  # 600 / 1,000, and 900 / 1,500
    assert goals[1].endswith("lowest 0.20x, **not met**;")  # 200 / 1,000
    assert "worst 12.00 ms, **not met**" in goals[2]
    assert "slowest p50 0.500 ms, met; under 3 ms realtime: 2.000 ms, met" in goals[3]
    assert goals[4] == "- cold start under 1.5 s: slowest 2.00 s, **not met**."


def test_the_readme_lines_are_written_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# recs\n\n{README_START}old figures\n{README_STOP}\n\nthe rest\n")
    lines = readme_lines(_measured())
    write_readme(lines, readme)
    text = readme.read_text()
    assert text.startswith("# recs\n\n")
    assert text.endswith(f"{README_STOP}\n\nthe rest\n")
    assert "old figures" not in text
    assert "health at 600 requests/s" in lines[0]
    assert "realtime personalized answers" in lines[0].lower()
    assert "(als (factors 64), 0.20x)" in lines[0]  # the slowest realtime recipe


def test_the_readme_quotes_the_last_benchmark_run() -> None:
    """The README's performance lines are the ones `make bench` wrote with docs/benchmarks.md."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    block = readme.split(README_START, 1)[1].split(README_STOP, 1)[0].strip().splitlines()
    assert block, "the README's serving-bench block is empty: run make bench"
    report = (root / "docs" / "benchmarks.md").read_text()
    for line in block:
        assert f"> {line}" in report, line
