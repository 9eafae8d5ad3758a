"""The trainer seam: our recipes or Amazon Personalize, one interface.

Both write a version that `recs evaluate`, the gate, `recs publish` and the API take:
`models/<version>/manifest.json` and `batch/<version>/`. The version is named after the
run's clock, so a run resumed after a kill writes the same version again, not a second one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from common.progress import Progress, quiet
from ingestion.lake import Lake
from training.artifacts import MODELS
from training.errors import TrainingFailed
from training.settings import TrainingSettings

if TYPE_CHECKING:
    from mypy_boto3_personalize import PersonalizeClient


@dataclass(frozen=True)
class Trained:
    """What a trainer wrote."""

    version: str
    chosen: str


def version_name(now: datetime) -> str:
    """A version's name: its training clock, to the second."""
    return f"{now:%Y%m%dT%H%M%SZ}"


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


class LocalTrainer:
    """Our recipes, tuned on the data (`training.pipeline.train` with its defaults)."""

    name = "local"

    def train(
        self,
        lake: Lake,
        *,
        now: datetime,
        export_prefix: str | None = None,
        progress: Progress = quiet,
    ) -> Trained:
        """`recs train` with no flags."""
        from training.pipeline import train

        report = train(lake, now=now, progress=progress)
        return Trained(report.version, report.chosen)


@dataclass
class PersonalizeBackend:
    """Amazon Personalize, on top of our own model (`training.personalize`).

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
        from training.personalize import (
            PersonalizeSettings,
            PersonalizeTrainer,
            train_with_personalize,
        )

        if not export_prefix:
            raise TrainingFailed(
                "the personalize trainer needs an export; run `recs export personalize` first"
            )
        settings = PersonalizeSettings.from_settings(self.settings)
        version = version_name(now)
        if not lake.exists(f"{MODELS}/{version}/manifest.json"):
            progress("our own model first: the fallback, related items and realtime answers")
            LocalTrainer().train(lake, now=now, progress=progress)
        else:
            # A retry after TrainingPending: ours is written, Personalize's jobs go on.
            progress(f"our own model {version} is already written; on to Personalize")
        trainer = PersonalizeTrainer(settings, client=self.client)
        run = train_with_personalize(
            lake, trainer, export_prefix=export_prefix, version=version, progress=progress
        )
        return Trained(run.version, "personalize user-personalization")


def trainer_for(name: str, settings: TrainingSettings) -> Trainer:
    """The trainer a setting names."""
    if name == "local":
        return LocalTrainer()
    if name == "personalize":
        return PersonalizeBackend(settings)
    raise TrainingFailed(f"unknown trainer {name!r}: use local or personalize")
