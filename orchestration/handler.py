"""The Lambda entry point of the state machine's steps (`orchestration.handler.handler`).

The state machine (`orchestration/statemachine.asl.json`) calls it once per step with
`{"step": "start"}` and then `{"step": NAME, "run_id": ID}`. Every answer carries the run id,
its trainer and `compute` (where the etl and train steps run: `RECS_ETL_ON`,
`RECS_TRAIN_ON`), which the state machine's Choices read. Each call runs one step of
`orchestration.steps.STEPS` against the run record in the lake, exactly as the local runner
does. With the Personalize trainer, `{"step": "train", "run_id": ID, "phase": P}` first
starts each of Personalize's long jobs, which the state machine then polls itself. A
failing step raises its own error class, so the state machine's Retry and Catch match our
class names (`LakeLocked`, `TrainingPending`, `DataQualityError`, ...).
"""

from __future__ import annotations

import logging
from typing import Any

from common.lake import open_lake

logger = logging.getLogger(__name__)


def handler(event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
    """Run the step the event names and say what it did."""
    from common.cli import clock_value
    from orchestration.runner import run_one, start_run
    from orchestration.settings import PipelineSettings

    settings = PipelineSettings.from_env()
    settings.refuse_local_files_beside_aws("The pipeline's steps")
    lake = open_lake(settings.lake)
    name = event.get("step")
    if name == "start":
        given = event.get("input") or {}
        record = start_run(
            lake,
            settings,
            clock_value(given.get("now")),
            "state machine",
            full_history=given.get("full_history") is True,
            force_train=given.get("force_train") is True,
        )
        return {
            "run_id": record.run_id,
            "trainer": record.trainer,
            "compute": where_steps_run(settings),
            "outcome": None,
        }
    run_id = event.get("run_id")
    if not isinstance(name, str) or not isinstance(run_id, str):
        raise ValueError('the event needs "step" and "run_id" (or {"step": "start"})')
    if isinstance(event.get("phase"), str):
        return _personalize_phase(lake, settings, run_id, event["phase"])
    if name == "notify" and isinstance(event.get("error"), dict):
        _record_crash(lake, run_id, event["error"])
    record = run_one(lake, settings, run_id, name, progress=logger.info)
    mine = record.step(name)
    return {
        "run_id": record.run_id,
        "trainer": record.trainer,
        "compute": where_steps_run(settings),
        "step": name,
        "status": mine.status,
        "outcome": record.result("gate", "outcome"),
        "result": mine.result,
    }


def where_steps_run(settings: Any) -> dict[str, str]:
    """Where the state machine runs each heavy step: its Choices read the answer at
    `$.compute` (lambda, glue or batch)."""
    return {"etl": settings.etl_on, "train": settings.train_on}


def _personalize_phase(lake: Any, settings: Any, run_id: str, phase: str) -> dict[str, Any]:
    """Start one of Personalize's long jobs for the run's `train` step (the state machine
    polls it with aws-sdk integrations), and record what was started."""
    from orchestration.runs import RunRecord
    from training.trainer import PersonalizeBackend

    record = RunRecord.load(lake, run_id)
    export = record.result("export", "prefix")
    if record.trainer != "personalize" or not isinstance(export, str):
        raise ValueError(f"run {run_id} has no Personalize export to train on")
    started = PersonalizeBackend(settings).start(
        lake, phase, now=record.clock, export_prefix=export, progress=logger.info
    )
    step = record.step("train")
    step.result = {**(step.result or {}), phase: started}
    record.save(lake)
    return {
        "run_id": run_id,
        "trainer": record.trainer,
        "compute": where_steps_run(settings),
        "outcome": None,
        "result": started,
    }


def _record_crash(lake: Any, run_id: str, error: dict[str, Any]) -> None:
    """A step whose Lambda died (a timeout, out of memory) never recorded its failure: the
    state machine's Catch hands the error over, and it is recorded before the summary."""
    from orchestration.runs import RunRecord

    record = RunRecord.load(lake, run_id)
    for step in record.steps:
        if step.status == "running":
            step.status = "failed"
            step.error = f"{error.get('Error', 'Error')}: {error.get('Cause', '')}"[:1000]
    record.save(lake)
