"""The nightly pipeline's steps, defined once: their order, which trainer runs each, and
which errors a runner retries.

The local runner (`orchestration.runner`) walks `STEPS`; the Step Functions state machine
follows the same names and order. Each step is a thin call into the stage that owns the work:

1. flush: ingestion's local sink writes waiting events to the raw zone;
2. etl: the ETL curates what is new;
3. export: the ETL writes Personalize's import files (Personalize trainer only);
4. train: the trainer seam (`training.trainer`) writes a version;
5. evaluate: the metrics the trainer recorded for that version, beside popularity's;
6. gate: whether the version was approved, and why not;
7. publish: serving loads an approved version into the online store and flips the pointer
   (a kept candidate is skipped: a normal night, not a failure);
8. notify: one message saying what the night did, sent even when a step failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from common.errors import RecsError
from common.lake import Lake
from common.progress import Progress
from orchestration.runs import RunRecord
from orchestration.settings import PipelineSettings

TRAINERS: Final = ("local", "personalize")


class StepSkipped(RecsError):
    """A step with nothing to do tonight; its message says why (not a failure)."""


@dataclass
class Context:
    """What every step is given: where things are, the run so far, and how to report."""

    lake: Lake
    settings: PipelineSettings
    record: RunRecord
    progress: Progress

    @property
    def now(self) -> datetime:
        """The run's clock."""
        return self.record.clock


@dataclass(frozen=True)
class Step:
    """One step: its name, what it does, who owns it, and how it is retried."""

    name: str
    owner: str
    does: str
    run: Callable[[Context], dict[str, Any]]
    trainers: tuple[str, ...] = TRAINERS
    #: Error class names worth another try (the state machine's Retry lists the same).
    retry_on: tuple[str, ...] = field(default=())
    #: Error class names that mean "a job of AWS's is still running; call again later": the
    #: state machine retries them every minute, for up to `PENDING_ATTEMPTS` tries.
    pending_on: tuple[str, ...] = field(default=())


def _flush(ctx: Context) -> dict[str, Any]:
    from ingestion.sinks import make_sink
    from ingestion.sinks.local import LocalSink

    if ctx.settings.sink != "local":
        raise StepSkipped(f"events go to {ctx.settings.sink}, which delivers to the lake itself")
    sink = make_sink(ctx.settings)
    assert isinstance(sink, LocalSink)
    try:
        report = sink.flush(force=True)
    finally:
        sink.close()
    ctx.progress(f"  {report.events:,} events into {len(report.objects)} raw objects")
    return {"events": report.events, "objects": len(report.objects)}


def _etl(ctx: Context) -> dict[str, Any]:
    from etl.glue import catalog_for
    from etl.job import run_etl

    # As `recs etl`: an S3 lake's new dates become Glue partitions, so Athena sees them.
    # The ETL's clock is the wall clock, never the run's: events that arrived after the
    # run's clock (a resume hours later, a night run for a past date) are not "in the
    # future", and must not be quarantined.
    report = run_etl(
        ctx.lake,
        glue=catalog_for(ctx.lake, ctx.settings.glue_database),
        batch_bytes=ctx.settings.etl_batch_mb << 20,
    )
    ctx.progress(
        f"  {report.raw_objects:,} raw objects: {report.curated:,} curated, "
        f"{report.quarantined:,} quarantined, {report.duplicates:,} duplicates"
    )
    return {
        "raw_objects": report.raw_objects,
        "curated": report.curated,
        "quarantined": report.quarantined,
        "duplicates": report.duplicates,
    }


def _export(ctx: Context) -> dict[str, Any]:
    from etl.personalize import export_personalize

    # Nightly runs export what Personalize has not imported yet; the full-history run all.
    incremental = not ctx.record.full_history
    report = export_personalize(
        ctx.lake,
        run=ctx.record.run_id,
        incremental=incremental,
        part_bytes=int(ctx.settings.personalize_part_mb * 10**6),
        memory_mb=ctx.settings.export_memory_mb,
    )
    since = f" since {report.since}" if report.since else ""
    parts = len(report.interaction_parts)
    ctx.progress(
        f"  {report.interactions:,} interactions{since} into {report.prefix}/ "
        f"({parts} part{'s' if parts != 1 else ''})"
    )
    return {
        "prefix": report.prefix,
        "mode": report.mode,
        "interactions": report.interactions,
        "parts": len(report.interaction_parts),
        "items": report.items,
    }


def _train(ctx: Context) -> dict[str, Any]:
    from training.freshness import nothing_new
    from training.trainer import trainer_for

    if not ctx.record.force_train:
        window = None if ctx.record.full_history else ctx.settings.train_window_days
        reason = nothing_new(ctx.lake, window, "`recs pipeline run --force`")
        if reason is not None:
            raise StepSkipped(reason)
    trainer = trainer_for(ctx.settings.trainer, ctx.settings, full_history=ctx.record.full_history)
    export = ctx.record.result("export", "prefix")
    trained = trainer.train(ctx.lake, now=ctx.now, export_prefix=export, progress=ctx.progress)
    return {"version": trained.version, "chosen": trained.chosen}


def _version(ctx: Context) -> str:
    if ctx.record.step("train").status == "skipped":
        raise StepSkipped("nothing was trained tonight; production stays as it was")
    version = ctx.record.version
    if version is None:
        raise RecsError("no version was trained in this run; resume it from its train step")
    return version


def _evaluate(ctx: Context) -> dict[str, Any]:
    from training.artifacts import SERVED
    from training.versions import describe

    found = describe(ctx.lake, _version(ctx), None)
    if found.ndcg10 is not None and found.popularity_ndcg10 is not None:
        where = " (on Personalize's holdout)" if found.backend == "personalize" else ""
        ctx.progress(
            f"  {found.version} ({found.chosen}): NDCG@10 {found.ndcg10:.4f}{where}, "
            f"popularity {found.popularity_ndcg10:.4f}"
        )
    metrics = {k: v for k, v in (found.manifest.get("metrics") or {}).items() if k != SERVED}
    return {
        "ndcg10": found.ndcg10,
        "popularity_ndcg10": found.popularity_ndcg10,
        "scored": sorted(metrics),
    }


def _gate(ctx: Context) -> dict[str, Any]:
    from training.versions import describe

    found = describe(ctx.lake, _version(ctx), None)
    outcome = "approved" if found.state == "approved" else "kept"
    reasons = list(found.reasons)
    ctx.progress(f"  {outcome}: {'; '.join(reasons) or 'no reason recorded'}")
    return {"outcome": outcome, "reasons": reasons}


def _publish(ctx: Context) -> dict[str, Any]:
    from serving.errors import ExperimentRunning
    from serving.publish import publish

    if ctx.record.result("gate", "outcome") != "approved":
        raise StepSkipped(
            f"the gate kept {_version(ctx)} as a candidate; production stays as it was"
        )
    store = ctx.settings.publishing_store(ctx.lake)
    try:
        report = publish(ctx.lake, store, _version(ctx), progress=ctx.progress)
    except ExperimentRunning as exc:
        # A normal night while an experiment runs: the new version waits, approved, for
        # `recs models promote` once the experiment is over.
        raise StepSkipped(str(exc)) from None
    return {"version": report.version, "users": report.users, "items": report.items}


def _notify(ctx: Context) -> dict[str, Any]:
    from orchestration.notify import notifier_for, summary

    message = summary(ctx.record)
    notifier_for(ctx.settings).send(message, ctx.progress)
    return {"message": message}


STEPS: Final[tuple[Step, ...]] = (
    Step(
        "flush",
        "ingestion",
        "write waiting events to the raw zone",
        _flush,
        retry_on=("LakeLocked",),
    ),
    Step("etl", "etl", "curate what is new in the raw zone", _etl, retry_on=("LakeLocked",)),
    Step(
        "export",
        "etl",
        "write Personalize's import files",
        _export,
        trainers=("personalize",),
    ),
    Step(
        "train",
        "training",
        "tune, fit and write a model version",
        _train,
        retry_on=("TrainingPending",),
    ),
    Step("evaluate", "training", "the version's metrics beside popularity", _evaluate),
    Step("gate", "training", "approve the version, or keep it as a candidate", _gate),
    Step(
        "publish",
        "serving",
        "load the version into the online store and flip the pointer",
        _publish,
        # TrainingPending: a Personalize campaign still updating to the new solution version.
        retry_on=("UnprocessedWrites", "TrainingPending"),
        # A table swap's import still running: each try waits on it for 5 minutes.
        pending_on=("PublishPending",),
    ),
    Step("notify", "orchestration", "say what the night did", _notify),
)


def steps_for(trainer: str) -> list[Step]:
    """The steps a run with this trainer takes, in order."""
    if trainer not in TRAINERS:
        raise RecsError(f"unknown trainer {trainer!r}: use one of {', '.join(TRAINERS)}")
    return [step for step in STEPS if trainer in step.trainers]
