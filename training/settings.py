"""Settings of `recs train` and `recs evaluate`: the lake, and the Personalize backend's."""

from __future__ import annotations

from pydantic import Field

from common.settings import LakeSettings


class TrainingSettings(LakeSettings):
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
