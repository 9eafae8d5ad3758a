"""The errors ingestion raises. Callers (the HTTP edge, Step Functions) match on these classes."""

from __future__ import annotations

from common.errors import RecsError


class IngestionError(RecsError):
    """Base class of every error raised by the ingestion package."""


class DeliveryFailed(IngestionError):
    """A sink could not deliver some events after all its retries; nothing was acknowledged."""


class HistoryUnavailable(IngestionError):
    """The recent-history table could not be read; the message names it and why."""
