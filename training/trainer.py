"""The trainer seam: our recipes or Amazon Personalize, one interface.

Both write a version that `recs evaluate`, the gate, `recs publish` and the API take:
`models/<version>/manifest.json` and `batch/<version>/`. The version is named after the
run's clock, so a run resumed after a kill writes the same version again, not a second one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from common.lake import Lake
from common.progress import Progress, quiet
from training.errors import TrainingFailed
from training.registry import is_complete, version_name
from training.settings import TrainingSettings

if TYPE_CHECKING:
    from mypy_boto3_personalize import PersonalizeClient

#: Personalize's long jobs, in the order the state machine starts and polls them.
PHASES: Final = ("imports", "training", "batch")


@dataclass(frozen=True)
class Trained:
    """What a trainer wrote."""

    version: str
    chosen: str


class Trainer(Protocol):
    """Writes one model version from the curated zone (or, for Personalize, an export)."""

    name: str

    def train(
        self,
        lake: Lake,
        *,
        now: datetime,
        export_prefix: str | None = None,
        progress: Progress = quiet,
    ) -> Trained:
        """Train, score and write a version named after `now`."""


@dataclass
class LocalTrainer:
    """Our recipes, tuned on the data (`training.pipeline.train` with its defaults), on the
    last `window_days` of events, or on all of them."""

    window_days: int | None = None
    #: The exploration share (None: what the holdout supports) and the young items' age.
    exploration: float | None = None
    exploration_age_days: float = 30.0
    name = "local"

    @classmethod
    def from_settings(
        cls, settings: TrainingSettings, *, full_history: bool = False
    ) -> LocalTrainer:
        """The trainer the settings describe; `full_history` ignores the training window."""
        return cls(
            None if full_history else settings.train_window_days,
            settings.exploration,
            settings.exploration_age_days,
        )

    def train(
        self,
        lake: Lake,
        *,
        now: datetime,
        export_prefix: str | None = None,
        progress: Progress = quiet,
    ) -> Trained:
        """`recs train` with no flags."""
        from training.pipeline import TrainOptions, train

        options = TrainOptions(
            window_days=self.window_days,
            exploration="auto" if self.exploration is None else self.exploration,
            exploration_age_days=self.exploration_age_days,
        )
        report = train(lake, options, now=now, progress=progress)
        return Trained(report.version, report.chosen)


@dataclass
class PersonalizeBackend:
    """Amazon Personalize, on top of our own model (`training.personalize_run`).

    Our trainer runs first, under the same version name: its model answers related items,
    realtime requests and whatever the campaign cannot, and its holdout metrics stand beside
    Personalize's. Then Personalize imports the export, trains, and batch-recommends; its
    answers become the version's user rows.
    """

    settings: TrainingSettings
    client: PersonalizeClient | None = field(default=None, repr=False)
    name = "personalize"

    def train(
        self,
        lake: Lake,
        *,
        now: datetime,
        export_prefix: str | None = None,
        progress: Progress = quiet,
    ) -> Trained:
        """Train ours, then import the export, train a solution version, batch-recommend."""
        from training.personalize import PersonalizeSettings, PersonalizeTrainer
        from training.personalize_run import train_with_personalize

        if not export_prefix:
            raise TrainingFailed(
                "the personalize trainer needs an export; run `recs export personalize` first"
            )
        settings = PersonalizeSettings.from_settings(self.settings)
        version = version_name(now)
        if not is_complete(lake, version):
            progress("our own model first: the fallback, related items and realtime answers")
            LocalTrainer.from_settings(self.settings).train(lake, now=now, progress=progress)
        else:
            # A retry after TrainingPending: ours is written, Personalize's jobs go on.
            progress(f"our own model {version} is already written; on to Personalize")
        trainer = PersonalizeTrainer(settings, client=self.client)
        run = train_with_personalize(
            lake, trainer, export_prefix=export_prefix, version=version, progress=progress
        )
        return Trained(run.version, "personalize user-personalization")

    def start(
        self,
        lake: Lake,
        phase: str,
        *,
        now: datetime,
        export_prefix: str,
        progress: Progress = quiet,
    ) -> dict[str, Any]:
        """Start one of Personalize's long jobs and return its ARNs, without waiting.

        The state machine calls these in order (`imports`, `training`, `batch`), polls each
        job with its own Wait and Choice states, and then runs the whole `train`, which
        finds every job done and writes the version. Each is idempotent, as `train` is.
        """
        from training.metrics import K
        from training.personalize import PersonalizeSettings, PersonalizeTrainer
        from training.personalize_run import (
            batch_input,
            export_kind,
            export_parts,
            export_schemas,
        )

        trainer = PersonalizeTrainer(
            PersonalizeSettings.from_settings(self.settings), client=self.client
        )
        version = version_name(now)
        if phase not in PHASES:
            raise TrainingFailed(f"unknown Personalize phase {phase!r}: one of {PHASES}")
        if phase == "imports":
            if not is_complete(lake, version):
                LocalTrainer.from_settings(self.settings).train(lake, now=now, progress=progress)
            group = trainer.dataset_group()
            datasets = trainer.datasets(group, export_schemas(lake, export_prefix))
            mode, _ = export_kind(lake, export_prefix)
            imports = trainer.start_imports(
                version, datasets, export_prefix, mode, export_parts(lake, export_prefix)
            )
            # More parts: the state machine comes back here once these jobs are done.
            return {"jobs": imports.jobs, "more": imports.left > 0}
        group = trainer.dataset_group()
        solution_version = trainer.start_solution_version(version, trainer.solution(group))
        if phase == "training":
            return {"job": solution_version}
        users_input, _ = batch_input(lake, export_prefix, version)
        job = trainer.start_batch_recommendations(
            version, solution_version, users_input, trainer.not_purchased_filter(group), K
        )
        return {"job": job}


def trainer_for(name: str, settings: TrainingSettings, *, full_history: bool = False) -> Trainer:
    """The trainer a setting names; `full_history` ignores the training window."""
    if name == "local":
        return LocalTrainer.from_settings(settings, full_history=full_history)
    if name == "personalize":
        return PersonalizeBackend(settings)
    raise TrainingFailed(f"unknown trainer {name!r}: use local or personalize")
