"""`recs pipeline` (run, status, schedule) and `recs models` (list, show, promote, rollback,
experiment)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from common.cli import CommandFailed, clock, fails_cleanly, out, say, with_settings
from common.lake import lake_for_reading, lake_for_writing
from orchestration.settings import PipelineSettings
from serving.experiment import METRICS, MIN_DAYS
from serving.settings import StoreSettings


@click.group("pipeline")
def pipeline() -> None:
    """The nightly pipeline: flush, etl, (export), train, evaluate, gate, publish, notify."""


@pipeline.command("run")
@click.option("--resume", is_flag=True, help="Go on with the last failed or killed run.")
@click.option(
    "--now",
    callback=clock,
    help="The run's clock (UTC), for a replay or a test; default: the time it starts.",
)
@click.option(
    "--full-history",
    is_flag=True,
    help="Train on all of history, whatever --train-window-days says (the weekly run).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Train even when nothing is new since production's version (the night is otherwise "
    "skipped from train on).",
)
@with_settings(PipelineSettings)
@fails_cleanly
def run_command(
    resume: bool,
    now: datetime | None,
    full_history: bool,
    force: bool,
    settings: PipelineSettings,
) -> None:
    """Run every step in order, with a progress line per step and a record of each.

    A step that fails with a retryable error is tried again with backoff. A gate that keeps
    the new version as a candidate is a normal night: publish is skipped, the run succeeds,
    and notify says why. The record is _state/runs/<id>.json.

    \b
    Example: recs pipeline run && recs pipeline status
    """
    from orchestration.runner import run_pipeline

    record = run_pipeline(
        lake_for_writing(settings.lake),
        settings,
        resume=resume,
        now=now,
        full_history=full_history,
        force_train=force,
        progress=say,
    )
    out.print(
        f"Run {record.run_id} succeeded: {record.result('notify', 'message')}", highlight=False
    )


@pipeline.command("status")
@click.option("--limit", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--json", "as_json", is_flag=True, help="The run records as JSON.")
@with_settings(PipelineSettings, only=("lake",))
@fails_cleanly
def status_command(limit: int, as_json: bool, settings: PipelineSettings) -> None:
    """The last runs, newest first: each step's status and time, and the version.

    \b
    Example: recs pipeline status --limit 3
    """
    from dataclasses import asdict, replace

    from orchestration.runs import last_runs, shown_status

    lake = lake_for_reading(settings.lake)
    runs = [replace(r, status=shown_status(lake, r)) for r in last_runs(lake, limit)]
    if as_json:
        out.print_json(json.dumps([asdict(r) for r in runs]))
        return
    if not runs:
        out.print("No pipeline runs yet; start one with `recs pipeline run`.")
        return
    for record in runs:
        resumed = f", resumed {record.resumed}x" if record.resumed else ""
        out.print(
            f"{record.run_id}  {record.status}  trainer {record.trainer}, clock {record.now}"
            f"{resumed}, version {record.version or '-'}",
            highlight=False,
        )
        if record.status == "killed":
            out.print(
                "    its runner stopped mid-run (no process holds the pipeline's lock); "
                "`recs pipeline run --resume` goes on from the unfinished step",
                highlight=False,
            )
        for step in record.steps:
            took = f"{step.seconds:.1f} s" if step.seconds is not None else ""
            detail = step.error or step.result.get("reason") or ""
            out.print(f"    {step.name:9} {step.status:9} {took:>9}  {detail}", highlight=False)


def next_run(now: datetime, at: str) -> datetime:
    """The next time of day `at` (HH:MM, UTC) strictly after `now`."""
    hour, minute = (int(part) for part in at.split(":"))
    today = now.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)


def _time_of_day(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        hour, minute = (int(part) for part in value.split(":"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a time of day like 02:00") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise click.BadParameter(f"{value!r} is not a time of day like 02:00")
    return f"{hour:02d}:{minute:02d}"


def schedule(
    at: str,
    run_once: Callable[[], None],
    *,
    nights: int | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run `run_once` every day at `at`, `nights` times (forever when None)."""
    done = 0
    while nights is None or done < nights:
        due = next_run(clock(), at)
        say(f"next run at {due:%Y-%m-%d %H:%M} UTC")
        while (left := (due - clock()).total_seconds()) > 0:
            sleep(min(left, 60.0))
        run_once()
        done += 1


@pipeline.command("schedule")
@click.option(
    "--at",
    "at",
    default="02:00",
    show_default=True,
    callback=_time_of_day,
    help="Time of day, UTC.",
)
@with_settings(PipelineSettings)
@fails_cleanly
def schedule_command(at: str, settings: PipelineSettings) -> None:
    """Run the pipeline every night at --at, in the foreground (for a machine without cron).

    A failed night is logged and the next one still runs; `recs pipeline run --resume`
    finishes a failed one by hand. docs/pipeline.md has the cron and systemd-timer lines.

    \b
    Example: recs pipeline schedule --at 02:00
    """
    from orchestration.runner import PipelineFailed, run_pipeline

    def once() -> None:
        try:
            record = run_pipeline(lake_for_writing(settings.lake), settings, progress=say)
            say(f"run {record.run_id} succeeded")
        except PipelineFailed as exc:
            say(str(exc))

    schedule(at, once)


@click.group("models")
def models() -> None:
    """Model versions: list, show, promote, roll back, and A/B experiments."""


@models.command("list")
@with_settings(StoreSettings, only=("lake",))
@fails_cleanly
def list_command(settings: StoreSettings) -> None:
    """Every version, newest first, with its state, backend, choice and NDCG@10.

    \b
    Example: recs models list
    """
    from training.versions import versions

    found = versions(lake_for_reading(settings.lake))
    if not found:
        out.print("No model versions yet; run `recs train` or `recs pipeline run`.")
        return
    out.print(
        f"{'version':18}  {'state':10}  {'backend':11}  {'NDCG@10':>8}  {'popularity':>10}  chosen"
    )
    for v in reversed(found):
        ndcg = f"{v.ndcg10:.4f}" if v.ndcg10 is not None else "-"
        pop = f"{v.popularity_ndcg10:.4f}" if v.popularity_ndcg10 is not None else "-"
        out.print(
            f"{v.version:18}  {v.state:10}  {v.backend:11}  {ndcg:>8}  {pop:>10}  {v.chosen}",
            highlight=False,
        )


@models.command("show")
@click.argument("version")
@with_settings(StoreSettings, only=("lake",))
@fails_cleanly
def show_command(version: str, settings: StoreSettings) -> None:
    """A version's manifest: what was chosen, its metrics, its gate.

    \b
    Example: recs models show 20261124T020000Z
    """
    from training.registry import production_version
    from training.versions import describe

    lake = lake_for_reading(settings.lake)
    found = describe(lake, version, production_version(lake))
    out.print(f"{found.version}: {found.state}, {found.backend}, {found.chosen}", highlight=False)
    out.print_json(json.dumps(found.manifest))


def _publish(settings: StoreSettings, version: str, force: bool) -> None:
    from serving.publish import publish

    lake = lake_for_reading(settings.lake)
    report = publish(lake, settings.publishing_store(lake), version, force=force, progress=say)
    out.print(f"{report.version} is in production ({report.users:,} users, {report.items:,} items)")


@models.command("promote")
@click.argument("version")
@click.option("--force", is_flag=True, help="Promote a version its gate kept as a candidate.")
@with_settings(StoreSettings)
@fails_cleanly
def promote_command(version: str, force: bool, settings: StoreSettings) -> None:
    """Put VERSION in production, through the same pointer flip as `recs publish`.

    \b
    Example: recs models promote 20261124T020000Z
    """
    _publish(settings, version, force)


@models.command("rollback")
@with_settings(StoreSettings)
@fails_cleanly
def rollback_command(settings: StoreSettings) -> None:
    """Put the version before production back in production (the store keeps it).

    \b
    Example: recs models rollback
    """
    from training.registry import ProductionPointer

    history = ProductionPointer(lake_for_reading(settings.lake)).history()
    if not history:
        raise CommandFailed("nothing is in production yet; there is nothing to roll back")
    if len(history) < 2:
        raise CommandFailed("only one version was ever published; there is none to roll back to")
    # It was live before, approved or forced; its gate was answered then.
    _publish(settings, history[-2], True)


@models.group("experiment")
def experiment() -> None:
    """An A/B split: a candidate version answers a share of shoppers (docs/experiments.md)."""


@experiment.command("start")
@click.argument("version")
@click.option(
    "--share",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
    help="The candidate's share of shoppers, each by a stable hash of their user id.",
)
@click.option(
    "--metric",
    type=click.Choice(METRICS),
    default="click-through",
    show_default=True,
    help="What decides it: shoppers acting on a recommendation, or buying through one.",
)
@click.option(
    "--min-days",
    type=click.IntRange(1),
    default=MIN_DAYS,
    show_default=True,
    help="Days it runs before a difference may be called clear.",
)
@with_settings(StoreSettings)
@fails_cleanly
def experiment_start(
    version: str, share: float, metric: str, min_days: int, settings: StoreSettings
) -> None:
    """Serve VERSION to --share of shoppers beside production, and attribute what they do.

    Its rows go into the online store beside production's; nothing flips. While it runs,
    a publish (the nightly one too) waits: it would change the control arm.

    \b
    Example: recs models experiment start 20261124T020000Z --share 0.1
    """
    from serving.experiment_control import start

    lake = lake_for_reading(settings.lake)
    found = start(
        lake,
        settings.publishing_store(lake),
        version,
        share=share,
        metric=metric,  # type: ignore[arg-type]
        min_days=min_days,
        progress=say,
    )
    out.print(
        f"Experiment {found.id} started: {found.share:.0%} of shoppers get {found.candidate}, "
        f"the rest {found.control}. `recs models experiment status` shows how it goes.",
        highlight=False,
    )


def _show(outcome: Any) -> None:
    """An outcome as a few lines."""
    e = outcome.experiment
    state = f"stopped {e.stopped_at} ({e.ended})" if e.stopped_at else "running"
    out.print(
        f"experiment {e.id}: {state}, since {e.started_at}, day {outcome.days:.1f}; decided "
        f"on {e.metric}",
        highlight=False,
    )
    from orchestration.outcomes import OUTCOMES

    heads = "".join(f"  {m:>24}" for m in OUTCOMES)
    out.print(f"  {'arm':9}  {'version':18}  {'shoppers':>8}{heads}", highlight=False)
    for name, arm in (("control", outcome.control), ("candidate", outcome.candidate)):
        shown = [
            f"{arm.rate(m):6.2%} ({arm.interval(m)[0]:.2%}-{arm.interval(m)[1]:.2%})"
            for m in OUTCOMES
        ]
        rates = "".join(f"  {r:>24}" for r in shown)
        out.print(f"  {name:9}  {arm.version:18}  {arm.shoppers:>8,}{rates}", highlight=False)
    out.print(f"  {outcome.says}", highlight=False)


@experiment.command("status")
@click.option("--json", "as_json", is_flag=True, help="The outcome as JSON.")
@with_settings(StoreSettings)
@fails_cleanly
def experiment_status(as_json: bool, settings: StoreSettings) -> None:
    """The running experiment (or the last one): each arm's shoppers, click-through,
    add-to-cart and conversion with 95% intervals, and whether the difference is clear yet.

    \b
    Example: recs models experiment status
    """
    from orchestration.outcomes import outcome
    from serving.experiment import records, running
    from serving.store import open_store

    lake = lake_for_reading(settings.lake)
    found = running(open_store(settings.store))
    if found is None:
        past = records(lake)
        if not past:
            raise CommandFailed(
                "no experiment has run; start one with `recs models experiment start VERSION`"
            )
        found = past[-1][0]
    result = outcome(lake, found)
    if as_json:
        out.print_json(json.dumps(result.body()))
    else:
        _show(result)


@experiment.command("stop")
@click.option(
    "--promote",
    is_flag=True,
    help="Publish the candidate, if it clearly won (the same flip as `recs models promote`).",
)
@click.option("--force", is_flag=True, help="With --promote: publish it whatever the outcome.")
@with_settings(StoreSettings)
@fails_cleanly
def experiment_stop(promote: bool, force: bool, settings: StoreSettings) -> None:
    """End the running experiment: everyone gets production again and the candidate's rows
    leave the store; or, with --promote, the candidate goes live, if it won.

    \b
    Example: recs models experiment stop --promote
    """
    from dataclasses import replace

    from orchestration.outcomes import outcome
    from serving.experiment import running
    from serving.experiment_control import stop

    if force and not promote:
        raise CommandFailed("--force goes with --promote")
    lake = lake_for_reading(settings.lake)
    store = settings.publishing_store(lake)
    found = running(store)
    if found is None:
        raise CommandFailed(
            "no experiment is running; `recs models experiment status` shows the last one"
        )
    result = outcome(lake, found)
    if promote and not result.won and not force:
        raise CommandFailed(
            f"not promoted, as the candidate has not clearly won: {result.says}. The "
            "experiment goes on; stop it without --promote, or add --force to publish "
            "the candidate anyway"
        )
    ended = stop(lake, store, promote=promote, progress=say, outcome=result.body())
    _show(replace(result, experiment=ended))  # counted a moment ago: not read again
    where = f"{ended.candidate} is in production" if promote else f"{ended.control} serves everyone"
    out.print(f"Experiment {ended.id} stopped; {where}.", highlight=False)


COMMANDS: list[click.Command] = [pipeline, models]
