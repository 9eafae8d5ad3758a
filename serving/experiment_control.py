"""Starting and stopping an A/B experiment (`serving.experiment`): the candidate's rows go
into the online store beside production's, then the store's experiment item tells the API to
split shoppers; stopping clears it and lets the candidate's rows go, or publishes the
candidate."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from common.contract import format_ts
from common.lake import Lake
from common.progress import Progress, quiet
from serving.errors import ExperimentRefused
from serving.experiment import (
    METRICS,
    MIN_DAYS,
    Experiment,
    Metric,
    end_record,
    running,
    save_record,
)
from serving.publish import keys_of, publish, write_rows
from serving.store import OnlineStore
from training.errors import ModelUnreadable
from training.published import PublishedModel
from training.registry import Manifest, ProductionPointer


def start(
    lake: Lake,
    store: OnlineStore,
    candidate: str,
    *,
    share: float,
    metric: Metric = "click-through",
    min_days: int = MIN_DAYS,
    now: datetime | None = None,
    progress: Progress = quiet,
) -> Experiment:
    """Write the candidate's rows into the store beside production's (no pointer flips), then
    start splitting shoppers: `share` of them get the candidate from the API's next look at
    the store (at most RECS_MODEL_CHECK_SECONDS later)."""
    if not 0 < share < 1:
        raise ExperimentRefused(f"--share must be between 0 and 1, not {share}; e.g. 0.1")
    if metric not in METRICS:
        raise ExperimentRefused(f"--metric must be one of {', '.join(METRICS)}, not {metric!r}")
    if min_days < 1:
        raise ExperimentRefused(f"--min-days must be at least 1, not {min_days}")
    already = running(store)
    if already is not None:
        raise ExperimentRefused(
            f"experiment {already.id} ({already.candidate} against {already.control}) is "
            "running; stop it first with `recs models experiment stop`"
        )
    control = ProductionPointer(lake).version()
    if control is None:
        raise ExperimentRefused(
            "nothing is in production yet: publish a version first, then test a candidate "
            "against it"
        )
    if candidate == control:
        raise ExperimentRefused(f"{candidate} is production already; name another version")
    for version in (candidate, control):
        if Manifest.load(lake, version).backend == "personalize":
            raise ExperimentRefused(
                f"{version} was trained by Personalize, whose campaign serves one solution "
                "version to everyone: an experiment splits shoppers between versions of our "
                "own trainer"
            )
    try:
        model = PublishedModel.load(lake, candidate)
    except ModelUnreadable as exc:
        raise ModelUnreadable(f"not started, as the API could not load it: {exc}") from None
    write_rows(lake, store, candidate, model, progress)
    store.ready(candidate)
    clock = now or datetime.now(UTC)
    experiment = Experiment(
        id=f"exp-{clock:%Y%m%dT%H%M%SZ}",
        candidate=candidate,
        control=control,
        share=share,
        started_at=format_ts(clock),
        metric=metric,
        min_days=min_days,
    )
    store.set_experiment(experiment.body())
    save_record(lake, experiment)
    progress(f"experiment {experiment.id}: {share:.0%} of shoppers get {candidate}")
    return experiment


def stop(
    lake: Lake,
    store: OnlineStore,
    *,
    promote: bool = False,
    now: datetime | None = None,
    progress: Progress = quiet,
    outcome: Mapping[str, Any] | None = None,
) -> Experiment:
    """End the running experiment: every shopper goes back to production, and the candidate's
    rows leave the store; or, with `promote`, the candidate is published (the same pointer
    flip as `recs models promote`, forced past its gate: the experiment is the evidence).
    `outcome` (`orchestration.outcomes.Outcome.body`) goes into the lake's record."""
    experiment = running(store)
    if experiment is None:
        raise ExperimentRefused(
            "no experiment is running; start one with `recs models "
            "experiment start VERSION --share 0.1`"
        )
    if promote:
        # publish() ends the experiment itself once the candidate is live.
        publish(lake, store, experiment.candidate, force=True, progress=progress)
    else:
        store.set_experiment(None)
        if experiment.candidate not in ProductionPointer(lake).history():
            progress(f"dropping {experiment.candidate}'s rows from the online store")
            store.drop_version(experiment.candidate, keys_of(lake, experiment.candidate))
    extra = {} if outcome is None else {"outcome": dict(outcome)}
    return end_record(lake, experiment, "promoted" if promote else "stopped", now, **extra)
