"""Settings of `recs pipeline`: everything its steps read, plus the trainer and the notifier."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from serving.settings import ServingSettings
from training.settings import TrainingSettings


class PipelineSettings(ServingSettings, TrainingSettings):
    """The lake, the sink, the store, the trainer, and where the night's summary goes."""

    trainer: Literal["local", "personalize"] = Field(
        "local", description="Who trains each night: local (our recipes) or personalize"
    )
    notify_topic_arn: str | None = Field(
        None,
        description="SNS topic the pipeline's summary is published to (else it is only logged)",
    )
