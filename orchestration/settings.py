"""Settings of `recs pipeline`: everything its steps read, plus the trainer and the notifier."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from etl.settings import EtlSettings
from serving.settings import ServingSettings
from training.settings import TrainingSettings


class PipelineSettings(ServingSettings, TrainingSettings, EtlSettings):
    """The lake, the sink, the store, the trainer, where the heavy steps run on AWS, and where
    the night's summary goes.

    It inherits each stage's settings because the pipeline runs each stage's steps, which
    take their own stage's settings: a PipelineSettings is a ServingSettings, a
    TrainingSettings and an EtlSettings. They meet at LakeSettings, declared once; every
    other setting is declared in one stage only (`tests/common/test_settings.py`)."""

    trainer: Literal["local", "personalize"] = Field(
        "local", description="Who trains each night: local (our recipes) or personalize"
    )
    etl_on: Literal["lambda", "glue"] = Field(
        "lambda",
        description="On AWS, where the state machine runs the etl step: lambda (15 minutes at "
        "most) or glue (the Glue job, for a lake that outgrows a Lambda)",
    )
    train_on: Literal["lambda", "batch"] = Field(
        "lambda",
        description="On AWS, where the state machine runs the train step: lambda (15 minutes, "
        "10 GB at most) or batch (an AWS Batch job on Fargate, for a big shop)",
    )
    notify_topic_arn: str | None = Field(
        None,
        description="SNS topic the pipeline's summary is published to (else it is only logged)",
    )
