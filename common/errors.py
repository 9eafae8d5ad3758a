"""The base of every error recs raises on purpose, and the errors of the shared core: the
lake, the record contract, the settings and the DynamoDB writer.

Each stage's `errors.py` derives its own hierarchy from `RecsError`, so that the command line
can turn any of them into a one-line message, and Step Functions can still match each class
by its name.
"""

from __future__ import annotations

from dataclasses import dataclass


class RecsError(Exception):
    """Base class of every error recs raises on purpose; its message says what to do."""


class SettingsError(RecsError):
    """A setting (flag, environment variable or settings file) is missing or invalid."""


class UnprocessedWrites(RecsError):
    """DynamoDB kept leaving some writes of a batch unprocessed after every retry."""


@dataclass(frozen=True)
class Problem:
    """One reason a record was refused: which field, and what rule it broke."""

    field: str
    message: str

    def __str__(self) -> str:
        return self.message


class InvalidRecord(RecsError):
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


class LakeError(RecsError):
    """The lake could not be read or written."""


class LakeNotFound(LakeError):
    """There is no lake where the settings point: the folder or bucket is missing or empty."""


class NotALake(LakeError):
    """The settings point at a folder or prefix that holds something other than a lake."""


class LakeLocked(LakeError):
    """Another process holds a lake-wide lock (another ETL run, say); retry when it is done."""


class DamagedObject(LakeError):
    """An object of the lake that recs wrote cannot be read back: damaged or edited by hand."""
