"""Running one side of a benchmark in a fresh interpreter, and reading its peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_child(module: str, *args: str) -> dict[str, float]:
    """`python -m module args...`; its last stdout line is a JSON object of figures."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, check=True
    )
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def peak_rss_mb() -> float:
    """This process's peak resident memory since exec (or since `reset_peak`).

    VmHWM starts afresh at exec; getrusage's ru_maxrss would carry over the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory needs Linux")


def reset_peak() -> None:
    """Start the peak-memory count again (Linux `clear_refs` 5 resets VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")
