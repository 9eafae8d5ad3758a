"""The local runner: walks `orchestration.steps.STEPS` in order, recording each step.

One run at a time (the lake's `pipeline` lock). A step that raises one of its retryable
errors is tried again with backoff; any other error fails the step, the notify step still
runs (as the state machine's Catch sends it there), and the run is marked failed.
`resume=True` goes on with the newest failed or killed run, from its first unfinished step,
with the run's own clock, so it ends as a clean run would have.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from common.contract import format_ts
from common.errors import RecsError
from common.lake import Lake
from common.layout import RUNS
from common.progress import Progress, quiet
from orchestration.runs import PIPELINE_LOCK, Runner, RunRecord, StepRecord, new_run, resumable
from orchestration.settings import PipelineSettings
from orchestration.steps import Context, Step, StepSkipped, steps_for

#: The pipeline holds its lock for a night's work at most; on S3 a dead holder's lock lapses.
LEASE_S: Final = 6 * 3600.0
ATTEMPTS: Final = 3
BACKOFF_S: Final = 5.0


class PipelineFailed(RecsError):
    """A step failed; the run record and the notify step say which, and why."""


def _retryable(step: Step, exc: BaseException) -> bool:
    names = (*step.retry_on, *step.pending_on)
    return any(cls.__name__ in names for cls in type(exc).__mro__)


def _run_step(
    step: Step,
    record: StepRecord,
    ctx: Context,
    save: Callable[[], None],
    sleep: Callable[[float], None],
    *,
    attempts: int = ATTEMPTS,
    on_failure: Callable[[BaseException], None] | None = None,
) -> None:
    record.status, record.error, record.result = "running", None, {}
    record.started_at = format_ts(datetime.now(UTC))
    started = time.perf_counter()
    while True:
        record.attempts += 1
        save()
        try:
            record.result = step.run(ctx)
            record.status = "succeeded"
        except StepSkipped as exc:
            record.status, record.result = "skipped", {"reason": str(exc)}
            ctx.progress(f"  skipped: {exc}")
        except RecsError as exc:
            if _retryable(step, exc) and record.attempts < attempts:
                wait = BACKOFF_S * 2 ** (record.attempts - 1)
                ctx.progress(f"  {type(exc).__name__}: {exc}; trying again in {wait:g} s")
                sleep(wait)
                continue
            record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
            if on_failure is not None:
                on_failure(exc)
        record.seconds = round(time.perf_counter() - started, 1)
        save()
        return


def run_pipeline(
    lake: Lake,
    settings: PipelineSettings,
    *,
    resume: bool = False,
    now: datetime | None = None,
    full_history: bool = False,
    force_train: bool = False,
    progress: Progress = quiet,
    sleep: Callable[[float], None] = time.sleep,
) -> RunRecord:
    """One night's run (or the rest of a failed one); raises `PipelineFailed` if a step failed.
    `full_history` trains on all of history whatever the training window; `force_train`
    trains even when nothing is new since production's version."""
    with lake.lock(PIPELINE_LOCK, lease_s=LEASE_S):
        steps = steps_for(settings.trainer)
        if resume:
            record = resumable(lake)
            if record.trainer != settings.trainer:
                raise RecsError(
                    f"run {record.run_id} used the {record.trainer} trainer; resume it with "
                    f"--trainer {record.trainer}"
                )
            record.resumed += 1
            record.status = "running"
            progress(f"resuming run {record.run_id} (clock {record.now})")
            record.save(lake)
        else:
            record = start_run(
                lake, settings, now, full_history=full_history, force_train=force_train
            )
            progress(f"run {record.run_id}: {' -> '.join(s.name for s in steps)}")
        ctx = Context(lake, settings, record, progress)

        def save() -> None:
            record.save(lake)

        total = len(steps)
        for number, step in enumerate(steps, start=1):
            mine = record.step(step.name)
            if mine.status in ("succeeded", "skipped"):
                progress(f"[{number}/{total}] {step.name}: done in an earlier attempt")
                continue
            progress(f"[{number}/{total}] {step.name}: {step.does}")
            _run_step(step, mine, ctx, save, sleep)
            if mine.status == "failed":
                progress(f"  failed: {mine.error}")
                notify = record.step("notify")
                if step.name != "notify":
                    # The night's summary goes out even when a step failed; on resume the
                    # notify step runs again with the whole run's outcome.
                    _run_step(
                        next(s for s in steps if s.name == "notify"), notify, ctx, save, sleep
                    )
                    notify.status = "pending"
                record.status = "failed"
                record.finished_at = format_ts(datetime.now(UTC))
                save()
                raise PipelineFailed(
                    f"step {step.name} failed ({mine.error}); the run record is "
                    f"{RUNS}/{record.run_id}.json. Fix the cause and run "
                    "`recs pipeline run --resume`"
                )
        record.status = "succeeded"
        record.finished_at = format_ts(datetime.now(UTC))
        save()
        return record


def start_run(
    lake: Lake,
    settings: PipelineSettings,
    now: datetime | None = None,
    runner: Runner = "local",
    *,
    full_history: bool = False,
    force_train: bool = False,
) -> RunRecord:
    """A new run's record, for a runner that calls one step at a time (the state machine)."""
    steps = steps_for(settings.trainer)
    record = new_run(
        now or datetime.now(UTC),
        settings.trainer,
        [s.name for s in steps],
        runner,
        full_history=full_history,
        force_train=force_train,
    )
    record.save(lake)
    return record


def run_one(
    lake: Lake,
    settings: PipelineSettings,
    run_id: str,
    name: str,
    progress: Progress = quiet,
    *,
    attempts: int = 1,
    sleep: Callable[[float], None] = time.sleep,
) -> RunRecord:
    """One step of a recorded run, tried `attempts` times on its retryable errors (once in a
    Lambda, whose state machine's Retry tries again; more in a Glue or Batch job, whose exit
    is all the state machine sees).

    A failure is recorded, then re-raised as it was, so the caller sees its class name.
    """
    record = RunRecord.load(lake, run_id)
    step = next((s for s in steps_for(record.trainer) if s.name == name), None)
    if step is None:
        raise RecsError(f"run {run_id} has no step {name!r}")
    mine = record.step(name)
    failure: list[BaseException] = []

    def save() -> None:
        record.save(lake)

    def keep(exc: BaseException) -> None:
        failure.append(exc)

    ctx = Context(lake, settings, record, progress)
    _run_step(step, mine, ctx, save, sleep, attempts=attempts, on_failure=keep)
    if name == "notify":
        failed = any(s.status == "failed" for s in record.steps)
        record.status = "failed" if failed else "succeeded"
        record.finished_at = format_ts(datetime.now(UTC))
        save()
    if failure:
        raise failure[0]
    return record
