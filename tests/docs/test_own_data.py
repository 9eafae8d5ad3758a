"""docs/own-data.md, run as written: every command, and every output it shows.

The page is run as one bash script in an empty folder, with `DATA` pointing at the shared
real data sets. After each ```bash block, the ```text block that follows (if any) lists lines
its output must contain; `…` stands for a part that changes from run to run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from common.lake import LocalLake
from etl.sql import connect
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "own-data.md"
DATA = ROOT.parent / "shared" / "data"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_MARK = "@@recs-doc-block-{}@@"
DOC_PORT = "8001"


def blocks(text: str) -> list[tuple[str, str | None]]:
    """Each bash block, with the text block that follows it, if any."""
    pairs: list[tuple[str, str | None]] = []
    for language, body in _FENCE.findall(text):
        if language == "bash":
            pairs.append((body, None))
        elif language == "text" and pairs and pairs[-1][1] is None:
            pairs[-1] = (pairs[-1][0], body)
    return pairs


def shown_in(expected: str, output: str) -> bool:
    """Whether one output line holds the expected line's parts, in order."""
    pattern = ".*?".join(re.escape(part) for part in expected.split("…"))
    return any(re.search(pattern, line) for line in output.splitlines())


def test_the_page_has_commands_and_outputs() -> None:
    pairs = blocks(DOC.read_text())
    assert len(pairs) >= 8
    assert all(expected for _, expected in pairs)
    assert shown_in("Run …: 2,269 raw objects", "Run 2026-1: 2,269 raw objects, 5 events")
    assert not shown_in("Run …: 2,270 raw objects", "Run 2026-1: 2,269 raw objects")


@pytest.mark.slow  # about 75 s: two real shops imported, curated and trained (make test-all)
def test_own_data_doc_runs_as_written(tmp_path: Path) -> None:
    if not (DATA / "online-retail").is_dir() or not (DATA / "movielens-100k").is_dir():
        pytest.skip(
            f"the real data sets are not at {DATA}: get UCI's Online Retail and GroupLens' "
            "MovieLens 100K in Personalize's CSV format there (see ../shared/data/README.md)"
        )
    pairs = blocks(DOC.read_text())
    port = str(free_port())
    script = ["set -euo pipefail"]
    for number, (commands, _) in enumerate(pairs):
        script += [f"echo {_MARK.format(number)}", commands.replace(DOC_PORT, port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DATA"] = str(DATA)
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Traceback" not in result.stdout
    for number, (commands, expected) in enumerate(pairs):
        start = result.stdout.index(_MARK.format(number))
        end = result.stdout.find(_MARK.format(number + 1))
        output = result.stdout[start : end if end >= 0 else None]
        missing = [
            line for line in (expected or "").splitlines() if line and not shown_in(line, output)
        ]
        assert not missing, f"block {number} ({commands.splitlines()[0]}): {missing}\n{output}"

    # Two overlapping exports give exactly the single import's events, ids and all.
    query = "SELECT event_id, user_id, item_id, ts FROM interactions ORDER BY event_id"
    once = connect(LocalLake(tmp_path / "retail" / "lake")).sql(query).fetchall()
    twice = connect(LocalLake(tmp_path / "overlap")).sql(query).fetchall()
    assert len(once) == 266_518
    assert twice == once
