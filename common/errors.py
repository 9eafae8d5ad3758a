"""The base of every error recs raises on purpose, and the errors of the shared plumbing.

Each stage's `errors.py` derives its own hierarchy from `RecsError`, so that the command line
can turn any of them into a one-line message, and Step Functions can still match each class
by its name.
"""

from __future__ import annotations


class RecsError(Exception):
    """Base class of every error recs raises on purpose; its message says what to do."""


class SettingsError(RecsError):
    """A setting (flag, environment variable or settings file) is missing or invalid."""


class UnprocessedWrites(RecsError):
    """DynamoDB kept leaving some writes of a batch unprocessed after every retry."""
