"""`recs etl`, `recs sql` and `recs export personalize` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.ingestion.test_cli import RECS, run


def test_generate_curate_query_and_export(tmp_path: Path) -> None:
    generated = run(
        "generate",
        "--users",
        "300",
        "--items",
        "120",
        "--days",
        "5",
        "--events",
        "6000",
        "--end",
        "2026-11-01",
        cwd=tmp_path,
    )
    assert generated.returncode == 0, generated.stderr

    first = run("etl", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "6,000 events read, 6,000 curated, 0 quarantined, 0 duplicates" in first.stdout

    again = run("etl", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Nothing new" in again.stdout

    query = run(
        "sql", "--format", "csv", "-c", "SELECT count(*) AS n FROM interactions", cwd=tmp_path
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.split() == ["n", "6000"]

    piped = run("sql", cwd=tmp_path, stdin="SELECT count(*) AS items FROM items;\n")
    assert piped.returncode == 0, piped.stderr
    assert "120" in piped.stdout

    bad = run("sql", "-c", "SELECT nope FROM interactions", cwd=tmp_path)
    assert bad.returncode == 2
    assert "query failed" in bad.stderr

    export = run("export", "personalize", "--run", "e2e", cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    assert (tmp_path / "lake/exports/personalize/e2e/interactions/part-00000.csv").is_file()

    trained = run("train", "--weights", "view=1,purchase=10", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "chose" in trained.stdout
    assert "popularity-count" in trained.stdout
    assert list((tmp_path / "lake/models").glob("*/manifest.json"))

    # Five days of a small shop of rebuyers: replaying each shopper's own items, then the
    # popular ones, scores above the tuned blend on 104 held-out users, so the gate keeps the
    # version as a candidate and says why; publishing it takes --force.
    assert "does not beat own history, then popular" in trained.stdout
    kept = run("publish", cwd=tmp_path)
    assert kept.returncode == 2
    assert "Publish it anyway with --force" in kept.stderr
    published = run("publish", "--force", cwd=tmp_path)
    assert published.returncode == 0, published.stderr
    assert "Published" in published.stdout
    assert (tmp_path / "var/online-store.sqlite3").is_file()

    refused = run("train", "--weights", "click=1", cwd=tmp_path)
    assert refused.returncode == 2
    assert "'click' is not an event type" in refused.stderr

    # Flags given to `recs serve` reach its worker processes: from a folder with no store of
    # its own, the API answers from the one --store names.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lake, store = str(tmp_path / "lake"), str(tmp_path / "var/online-store.sqlite3")
    port = str(free_port())
    server = subprocess.Popen(
        [RECS, "serve", "--port", port, "--lake", lake, "--store", store, "--event-log", "log.db"],
        cwd=elsewhere,
        env={k: v for k, v in os.environ.items() if not k.startswith("RECS_")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        health = _health(f"http://127.0.0.1:{port}/v1/health")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert health["ok"] is True
    assert health["modelVersion"] is not None
    assert (elsewhere / "log.db").is_file()
    assert not (elsewhere / "var" / "online-store.sqlite3").exists()


def _health(url: str) -> dict[str, Any]:
    for _ in range(150):
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as exc:
            return {"ok": False, "modelVersion": None, "status": exc.code}
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def test_commands_explain_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    empty = run("sql", "-c", "SELECT 1", cwd=tmp_path)
    assert empty.returncode == 2
    assert "No lake at" in empty.stderr
    assert "it is empty" in empty.stderr
    assert "Traceback" not in empty.stderr

    (tmp_path / "lake" / "raw").mkdir()
    nothing = run("etl", cwd=tmp_path)
    assert nothing.returncode == 0
    assert "Nothing new" in nothing.stdout

    uncurated = run("sql", "-c", "SELECT 1", cwd=tmp_path)
    assert uncurated.returncode == 2
    assert "no curated interactions" in uncurated.stderr

    wrong = run("etl", "--since", "last week", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "expected a date such as 2026-11-01" in wrong.stderr

    small = run(
        "generate",
        "--users",
        "30",
        "--items",
        "20",
        "--days",
        "2",
        "--events",
        "400",
        "--end",
        "2026-11-01",
        cwd=tmp_path,
    )
    assert small.returncode == 0, small.stderr
    assert run("etl", cwd=tmp_path).returncode == 0
    refused = run("export", "personalize", cwd=tmp_path)
    assert refused.returncode == 2
    assert (
        "Personalize needs at least 1000 interactions; the curated zone has 400" in refused.stderr
    )
