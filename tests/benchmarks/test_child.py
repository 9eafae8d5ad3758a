"""`benchmarks.child`: each command's own peak memory, measured in a child process.

A benchmark that measures the wrong thing fails here, not in a table nobody re-derives."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import pytest

from benchmarks.child import measure

DAY_MS = 86_400_000
START_MS = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp() * 1000)


def test_measure_gives_the_commands_own_peak_not_what_its_parent_holds() -> None:
    held = b"\x01" * (300 << 20)  # the parent's data, as the generated shop was
    child = "import time; b = b'\\x01' * (100 << 20); time.sleep(0.3)"
    found = measure([sys.executable, "-c", child])
    assert 100 <= found.rss_mb < 250
    assert found.seconds >= 0.3
    assert len(held) == 300 << 20  # still held while the child ran


def test_measure_names_a_command_that_failed() -> None:
    with pytest.raises(RuntimeError, match="failed \\(3\\): boom"):
        measure([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])
