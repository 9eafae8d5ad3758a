"""Run records: what each pipeline run did, step by step, in `_state/runs/<id>.json`.

A record is rewritten (atomically, as every lake write is) at each step's start and end, so
a run killed at any point leaves a record that says which step was under way. `--resume`
reads it back and goes on from there with the same clock.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from common.contract import format_ts
from common.errors import RecsError
from common.lake import Lake, damaged, read_json
from common.layout import RUNS

StepStatus = Literal["pending", "running", "succeeded", "skipped", "failed"]
#: "killed" is never stored: it is what a "running" record of the local runner is when no
#: process holds the pipeline's lock (`shown_status`).
RunStatus = Literal["running", "succeeded", "failed", "killed"]
#: Who drives a run's steps: `recs pipeline run` here, or the Step Functions state machine.
Runner = Literal["local", "state machine"]


class RunNotFound(RecsError):
    """No run record to resume or show."""


@dataclass
class StepRecord:
    """One step of one run."""

    name: str
    status: StepStatus = "pending"
    started_at: str | None = None
    seconds: float | None = None
    attempts: int = 0
    #: Counts and outcomes the step reported (events flushed, version trained, ...).
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class RunRecord:
    """One pipeline run."""

    run_id: str
    #: The run's clock: what every step takes as "now", the same again on --resume.
    now: str
    trainer: str
    status: RunStatus = "running"
    started_at: str = ""
    finished_at: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    #: Times the run was resumed after a failure or a kill.
    resumed: int = 0
    runner: Runner = "local"
    #: Train on all of history, whatever RECS_TRAIN_WINDOW_DAYS says (the weekly run).
    full_history: bool = False
    #: Train even when nothing is new since production's version (`training.freshness`).
    force_train: bool = False

    @property
    def clock(self) -> datetime:
        """`now` as a datetime."""
        return datetime.fromisoformat(self.now.replace("Z", "+00:00"))

    def step(self, name: str) -> StepRecord:
        """The record of one step."""
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def result(self, name: str, key: str) -> Any:
        """What an earlier step reported, or None."""
        try:
            return self.step(name).result.get(key)
        except KeyError:
            return None

    @property
    def version(self) -> str | None:
        """The model version this run trained, once it has."""
        found = self.result("train", "version")
        return str(found) if found else None

    def save(self, lake: Lake) -> None:
        """Write the record over its previous state."""
        lake.write_bytes(f"{RUNS}/{self.run_id}.json", json.dumps(asdict(self), indent=1).encode())

    @classmethod
    def load(cls, lake: Lake, run_id: str) -> RunRecord:
        """One run's record."""
        key = f"{RUNS}/{run_id}.json"
        try:
            raw = read_json(lake, key)
        except FileNotFoundError:
            raise RunNotFound(f"no pipeline run {run_id} under {RUNS}/") from None
        try:
            steps = [StepRecord(**s) for s in raw.pop("steps")]
            return cls(**raw, steps=steps)
        except (TypeError, KeyError, AttributeError) as exc:
            raise damaged(lake, key, f"not a run record ({exc})") from None


def new_run(
    now: datetime,
    trainer: str,
    steps: list[str],
    runner: Runner = "local",
    *,
    full_history: bool = False,
    force_train: bool = False,
) -> RunRecord:
    """A record for a run starting now, its id sortable by time."""
    started = datetime.now(UTC)
    return RunRecord(
        run_id=f"{started:%Y%m%dT%H%M%S%fZ}",
        now=format_ts(now),
        trainer=trainer,
        started_at=format_ts(started),
        steps=[StepRecord(name) for name in steps],
        runner=runner,
        full_history=full_history,
        force_train=force_train,
    )


#: The lake-wide lock a local run holds from its start to its end.
PIPELINE_LOCK: Final = "pipeline"


def shown_status(lake: Lake, record: RunRecord) -> RunStatus:
    """A run's status as it is now: a local run still recorded as running whose runner holds
    no lock any more was killed (`recs pipeline run --resume` goes on with it)."""
    local = record.runner == "local"
    if record.status == "running" and local and not lake.lock_held(PIPELINE_LOCK):
        return "killed"
    return record.status


def run_ids(lake: Lake) -> list[str]:
    """Every recorded run, oldest first."""
    return sorted(
        key.rsplit("/", 1)[-1].removesuffix(".json")
        for key in lake.list(f"{RUNS}/")
        if key.endswith(".json")
    )


def last_runs(lake: Lake, limit: int = 10) -> list[RunRecord]:
    """The newest runs, newest first."""
    return [RunRecord.load(lake, run_id) for run_id in reversed(run_ids(lake)[-limit:])]


def resumable(lake: Lake) -> RunRecord:
    """The newest run, if it failed or was killed; what `--resume` goes on with."""
    ids = run_ids(lake)
    if not ids:
        raise RunNotFound("no pipeline run to resume; run `recs pipeline run`")
    last = RunRecord.load(lake, ids[-1])
    if last.status == "succeeded":
        raise RunNotFound(
            f"the last run, {last.run_id}, succeeded: there is nothing to resume; "
            "start a new one with `recs pipeline run`"
        )
    return last
