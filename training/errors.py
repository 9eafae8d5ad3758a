"""The errors training raises. Step Functions' Retry and Catch match these class names."""

from __future__ import annotations

from common.errors import RecsError


class TrainingError(RecsError):
    """Base class of every error raised by the training package."""


class NotEnoughData(TrainingError):
    """The curated zone holds too little to train or evaluate on; retrying will not help."""


class ModelDiverged(TrainingError):
    """A model produced NaN or infinite values; its parameters or its input are wrong."""


class ModelRejected(TrainingError):
    """The promotion gate kept this version a candidate; publishing it needs --force."""


class ModelNotFound(TrainingError):
    """No model version by that name in the lake."""


class ModelUnreadable(TrainingError):
    """A model version's files are missing or damaged, so it cannot be loaded to serve."""


class TrainingPending(TrainingError):
    """An Amazon Personalize resource is still being created or trained. Retry later; a
    Step Functions Retry on this name with a long interval is the intended way to wait."""


class TrainingFailed(TrainingError):
    """Amazon Personalize reported a resource as failed; its reason is in the message."""
