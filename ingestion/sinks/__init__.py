"""Where accepted events go. One protocol, one adapter per backend, one shared test suite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from common.contract import Event
from common.lake import open_lake
from ingestion.settings import IngestionSettings
from ingestion.sinks.aws import FirehoseSink, KinesisSink
from ingestion.sinks.local import BufferHints, EventLog, LocalSink


class EventSink(Protocol):
    """Accepts validated events. When `put` returns, the events are acknowledged: durable."""

    def put(self, events: Sequence[Event]) -> int | None:
        """Deliver events; raise `DeliveryFailed` if any could not be delivered.

        Returns how many were new, where the sink can tell (the local log, which keeps one
        event per id); None where it cannot (Kinesis and Firehose deliver at least once,
        and the ETL keeps the first copy of each id).
        """
        ...

    def flush(self, force: bool = True) -> object:
        """Push anything buffered on our side on to its destination."""
        ...

    def close(self) -> None:
        """Release resources; acknowledged events are never dropped by closing."""
        ...


def make_sink(settings: IngestionSettings, *, background: bool = False) -> EventSink:
    """The sink the settings name, with its default clients."""
    if settings.sink == "kinesis":
        assert settings.kinesis_stream is not None  # IngestionSettings.check() ensures it
        return KinesisSink(settings.kinesis_stream)
    if settings.sink == "firehose":
        assert settings.firehose_stream is not None
        return FirehoseSink(settings.firehose_stream)
    return LocalSink(
        EventLog(settings.event_log),
        open_lake(settings.lake),
        hints=BufferHints(
            size_bytes=int(settings.buffer_mb * 1024 * 1024), interval_s=settings.buffer_seconds
        ),
        history_days=settings.history_days,
        background=background,
    )


__all__ = [
    "BufferHints",
    "EventLog",
    "EventSink",
    "FirehoseSink",
    "KinesisSink",
    "LocalSink",
    "make_sink",
]
