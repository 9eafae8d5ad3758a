"""The errors ingestion raises. Callers (the HTTP edge, Step Functions) match on these classes."""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import RecsError


class IngestionError(RecsError):
    """Base class of every error raised by the ingestion package."""


@dataclass(frozen=True)
class Problem:
    """One reason a record was refused: which field, and what rule it broke."""

    field: str
    message: str

    def __str__(self) -> str:
        return self.message


class InvalidRecord(IngestionError):
    """A record broke its contract. `problems` lists every rule it broke, first one first."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("InvalidRecord needs at least one problem")
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    @property
    def first(self) -> Problem:
        """The first problem, the one an HTTP answer shows."""
        return self.problems[0]


class InvalidEvent(InvalidRecord):
    """An interaction event broke the event contract."""


class InvalidCatalogRecord(InvalidRecord):
    """An item or user record broke the catalog contract."""


class DeliveryFailed(IngestionError):
    """A sink could not deliver some events after all its retries; nothing was acknowledged."""


class LakeError(IngestionError):
    """The lake could not be read or written."""


class LakeNotFound(LakeError):
    """There is no lake where the settings point: the folder or bucket is missing or empty."""


class NotALake(LakeError):
    """The settings point at a folder or prefix that holds something other than a lake."""


class LakeLocked(LakeError):
    """Another process holds a lake-wide lock (another ETL run, say); retry when it is done."""


class DamagedObject(LakeError):
    """An object of the lake that recs wrote cannot be read back: damaged or edited by hand."""


class HistoryUnavailable(IngestionError):
    """The recent-history table could not be read; the message names it and why."""
