"""The `recs` command as a user runs it: a real process, a real lake on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.lake import LocalLake
from ingestion.raw import RAW_EVENT_KEY, read_lines

RECS = str(Path(sys.executable).with_name("recs"))


def run(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RECS_")}
    full_env.update(env or {})
    return subprocess.run(
        [RECS, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def _events(lake: LocalLake) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for key in lake.list("raw/events/")
        for line in read_lines(lake.read_bytes(key))
    ]


def test_generate_writes_a_shop_into_the_default_lake(tmp_path: Path) -> None:
    result = run(
        "generate",
        "--users",
        "300",
        "--items",
        "120",
        "--categories",
        "6",
        "--days",
        "14",
        "--events",
        "5000",
        "--end",
        "2026-11-01",
        "--live-days",
        "1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Sent" in result.stdout
    assert "through the local sink" in result.stdout
    lake = LocalLake(tmp_path / "lake")
    keys = list(lake.list("raw/events/"))
    assert keys
    assert all(RAW_EVENT_KEY.match(k) for k in keys)
    events = _events(lake)
    assert len(events) == 5000
    assert len({e["event_id"] for e in events}) == 5000
    assert (tmp_path / "var" / "event-log.sqlite3").exists()
    assert len(list(lake.list("raw/catalog/"))) == 3


def test_ingest_delivers_good_lines_and_reports_bad_ones(tmp_path: Path) -> None:
    lines = "\n".join(
        [
            '{"userId":"U1","itemId":"I100","event_type":"view"}',
            '{"userId":"U1","itemId":"I100","event_type":"click"}',
            "not json",
            '{"user_id":"U2","item_id":"I7","event_type":"purchase","price":3.5,"quantity":1}',
        ]
    )
    result = run(
        "ingest", "-", cwd=tmp_path, stdin=lines, env={"RECS_LAKE": str(tmp_path / "shop")}
    )
    assert result.returncode == 0, result.stderr
    assert "2 events accepted by the local sink, 2 refused" in result.stdout
    assert (
        "-:2: event_type must be one of view, add_to_cart, purchase (got 'click')" in result.stderr
    )
    assert "-:3: Body is not valid JSON" in result.stderr
    assert sorted(e["user_id"] for e in _events(LocalLake(tmp_path / "shop"))) == ["U1", "U2"]
    strict = run("ingest", "--strict", "-", cwd=tmp_path, stdin=lines)
    assert strict.returncode == 1


def test_import_then_flush(tmp_path: Path) -> None:
    csv = tmp_path / "interactions.csv"
    csv.write_text("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nU1,I1,1755369000,view\nU2,I2,oops,view\n")
    result = run("import", str(csv), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 interactions rows, 1 imported, 1 refused" in result.stdout
    assert "interactions.csv:3: TIMESTAMP must be Unix seconds" in result.stderr
    assert "(got 'oops')" in result.stderr
    assert "quarantine/import/" in result.stderr
    assert run("flush", cwd=tmp_path).returncode == 0


def test_import_says_each_kind_of_problem_once_and_fails_when_most_rows_are_refused(
    tmp_path: Path,
) -> None:
    """Before, a run that refused 92% of the rows exited 0, and printed the same message for
    each of the first 20 rows (issue 27, item 2)."""
    csv = tmp_path / "interactions.csv"
    bad = "".join(f"U{n},I{n},{1755369000 + n}x,view\n" for n in range(25))
    csv.write_text("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nU1,I1,1755369000,view\n" + bad)
    result = run("import", str(csv), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "26 interactions rows, 1 imported, 25 refused" in result.stdout
    assert "25 rows: TIMESTAMP must be Unix seconds such as 1755369000 (" in result.stderr
    assert result.stderr.count("TIMESTAMP must be Unix seconds") == 4  # the kind, 3 examples
    assert "25 of 26 rows refused, more than half" in result.stderr
    assert "--allow-refused" in result.stderr
    assert len(_events(LocalLake(tmp_path / "lake"))) == 1  # the good row stays imported
    again = run("import", "--allow-refused", str(csv), cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_a_file_without_a_header_imports_with_columns_and_is_refused_without(
    tmp_path: Path,
) -> None:
    """Most exports come without a header row (issue 27, item 4)."""
    csv = tmp_path / "log.csv"
    csv.write_text("U1,I1,shoes,pv,1755369000\nU2,I2,hats,buy,1755369060\n")
    refused = run("import", str(csv), cwd=tmp_path)
    assert refused.returncode != 0
    assert "looks like data, not a header" in refused.stderr
    assert "--columns user,item,event,timestamp" in refused.stderr
    assert not (tmp_path / "lake").exists()
    result = run(
        "import", "--columns", "user,item,category,event,timestamp", str(csv), cwd=tmp_path
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 interactions rows, 2 imported, 0 refused" in result.stdout
    assert "2 new, 0 already in the lake" in result.stdout
    again = run(
        "import", "--columns", "user,item,category,event,timestamp", str(csv), cwd=tmp_path
    )  # fmt: skip
    assert "0 new, 2 already in the lake" in again.stdout
    # pv and buy are common spellings (item 1): read as ours, and said so.
    assert "event types read as ours: pv -> view (1), buy -> purchase (1)" in " ".join(
        result.stdout.split()
    )
    events = sorted(_events(LocalLake(tmp_path / "lake")), key=lambda e: str(e["user_id"]))
    assert [(e["user_id"], e["item_id"], e["event_type"]) for e in events] == [
        ("U1", "I1", "view"),
        ("U2", "I2", "purchase"),
    ]
    assert [e["shop_event_type"] for e in events] == ["pv", "buy"]
    assert events[0]["properties"] == {"category": "shoes"}


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["ingest", "-"],
            {"RECS_SINK": "kafka"},
            "RECS_SINK must be one of local, kinesis, firehose",
        ),
        (["ingest", "-"], {"RECS_SINK": "kinesis"}, "RECS_SINK=kinesis needs RECS_KINESIS_STREAM"),
        (["generate", "--users", "0"], {}, "users must be at least 1"),
        (["import", "missing.csv"], {}, "missing.csv does not exist"),
        (["generate", "--end", "yesterday"], {}, "is not a date like 2026-11-01"),
        (["import", "--map", "click", "missing.csv"], {}, "'click' is not NAME=TYPE"),
    ],
)
def test_bad_input_fails_with_a_clear_message_and_no_traceback(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = run(*args, cwd=tmp_path, stdin="", env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_prints_the_published_contract(tmp_path: Path) -> None:
    result = run("schema", "event", cwd=tmp_path)
    assert json.loads(result.stdout)["$id"] == "urn:recs:schema:event:v1"


@pytest.mark.parametrize("command", ["generate", "import", "ingest", "flush", "schema"])
def test_every_command_explains_itself_with_an_example(tmp_path: Path, command: str) -> None:
    result = run(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "Example:" in result.stdout


def test_each_stage_runs_as_a_module(tmp_path: Path) -> None:
    """`python -m orchestration` is `recs`; a stage's own group still runs, for one release,
    and says to use `recs`."""
    for module in ("ingestion", "orchestration"):
        result = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=tmp_path
        )
        assert result.returncode == 0
        assert "generate" in result.stdout
        said = f"Deprecated: python -m {module} goes in 0.2; use recs"
        assert (said in result.stderr) == (module == "ingestion")
