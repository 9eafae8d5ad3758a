"""The errors the ETL raises. Step Functions' Retry and Catch match these class names."""

from __future__ import annotations

from common.errors import RecsError


class EtlError(RecsError):
    """Base class of every error raised by the etl package."""


class DataQualityError(EtlError):
    """The data cannot serve its purpose as it is: too little of it, or broken beyond a record.

    Retrying will not help; someone has to look at the data.
    """


class StateConflict(EtlError):
    """Another run committed while this one was working; this run committed nothing.

    Safe to retry: the next run starts from the other run's bookmark.
    """


class CuratedZoneEmpty(EtlError):
    """A reader asked for curated data before any ETL run produced it."""


class CuratedZoneUnreadable(EtlError):
    """A curated file cannot be read: damaged, or written by something other than the ETL."""


class GlueDatabaseMissing(EtlError):
    """The Glue database the curated tables go in does not exist, and this role may not make it.

    Retrying will not help: create it (Terraform does) or name an existing one.
    """
