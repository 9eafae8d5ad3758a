"""The errors serving raises. The HTTP edge and Step Functions match these class names."""

from __future__ import annotations

from common.errors import RecsError


class ServingError(RecsError):
    """Base class of every error raised by the serving package."""


class StoreError(ServingError):
    """The online store refused or lost a write; the publish did not complete. Safe to retry."""


class ModelUnavailable(ServingError):
    """No model version is published yet, so there is nothing to answer with."""


class ExperimentRefused(ServingError):
    """An experiment cannot start or stop as asked; the message says what to do instead."""


class ExperimentRunning(ServingError):
    """A publish was refused: an experiment compares production with a candidate, and a new
    production version would change one arm under it. Stop the experiment first."""
