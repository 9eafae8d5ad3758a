"""Running one side of a benchmark in a fresh interpreter, and reading its peak memory.

`measure` runs any command under a small launcher (`python -m benchmarks.child CMD...`),
which forks it and reads its rusage, as GNU time does. A child's peak (ru_maxrss) starts
from the image it was forked from: run straight from a benchmark process that holds a
generated shop, it would report the shop's memory as its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Measured:
    """One command's wall time and its own peak resident memory."""

    seconds: float
    rss_mb: float


def measure(command: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run a command to its end: its wall time and the peak memory of its own process,
    whatever the caller holds. Raises `RuntimeError` with its stderr if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.child", *command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return Measured(float(figures["seconds"]), float(figures["rss_mb"]))


def main() -> None:
    """The launcher: run argv[1:], then print its seconds and peak memory as JSON; exit
    with its status (its stderr passes through, its stdout is dropped)."""
    started = time.perf_counter()
    process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    sys.stdout.write(json.dumps({"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024}) + "\n")
    sys.exit(process.returncode)


if __name__ == "__main__":
    main()
