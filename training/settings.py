"""Settings of `recs train` and `recs evaluate`: the lake, and the Personalize backend's."""

from __future__ import annotations

from pydantic import Field

from common.filters import FilterSettings
from common.settings import LakeSettings


class TrainingSettings(FilterSettings, LakeSettings):
    """The lake to train on; with `--backend personalize`, the stage and Personalize's role."""

    stage: str = Field(
        "dev",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
        description="Name prefix of Personalize resources (the deployment's stage)",
    )
    personalize_role_arn: str | None = Field(
        None,
        description="IAM role Amazon Personalize assumes, with --backend personalize",
    )
    train_window_days: int | None = Field(
        None,
        ge=1,
        description="Train on the last N days of events only (unset: all history); a big "
        "shop sets it and retrains on all history on a longer schedule",
    )
    exploration: float | None = Field(
        None,
        ge=0,
        le=0.5,
        description="Share of each list kept for items younger than RECS_EXPLORATION_AGE_DAYS "
        "(0 to 0.5; unset: the share the holdout supports, which may be 0)",
    )
    exploration_age_days: float = Field(
        30.0,
        gt=0,
        description="Days an item counts as young, for exploration",
    )
