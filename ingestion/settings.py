"""Settings of the ingestion entry points, read once from the environment.

An explicit argument beats the environment; a missing or invalid value fails with a message
that names the variable. The AWS endpoint is not ours to read: boto3 honours
`AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_<SERVICE>`) itself, so the same code talks to AWS or
to an emulator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from ingestion.errors import SettingsError

SinkKind = Literal["local", "kinesis", "firehose"]
SINK_KINDS: tuple[SinkKind, ...] = ("local", "kinesis", "firehose")


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number (got {raw!r})") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum:g} (got {raw!r})")
    return value


@dataclass(frozen=True)
class IngestionSettings:
    """Where events go and how the local sink buffers them.

    | variable | meaning | default |
    |---|---|---|
    | RECS_LAKE | lake root, a folder or s3://bucket/prefix | ./lake |
    | RECS_SINK | local, kinesis or firehose | local |
    | RECS_KINESIS_STREAM | stream name, when RECS_SINK=kinesis | (required then) |
    | RECS_FIREHOSE_STREAM | delivery stream, when RECS_SINK=firehose | (required then) |
    | RECS_EVENT_LOG | the local sink's SQLite event log | ./var/event-log.sqlite3 |
    | RECS_BUFFER_MB | flush when this many MiB are waiting (Firehose's SizeInMBs) | 5 |
    | RECS_BUFFER_SECONDS | flush when the oldest event has waited this long | 300 |
    | RECS_HISTORY_DAYS | how long the local log keeps flushed events for recent history | 30 |
    """

    lake: str = "./lake"
    sink: SinkKind = "local"
    kinesis_stream: str | None = None
    firehose_stream: str | None = None
    event_log: Path = Path("./var/event-log.sqlite3")
    buffer_mb: float = 5.0
    buffer_seconds: float = 300.0
    history_days: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> IngestionSettings:
        """Read the environment once; keyword arguments that are not None win over it."""
        env = os.environ if env is None else env
        sink = env.get("RECS_SINK") or "local"
        if sink not in SINK_KINDS:  # checked here too, to type `sink` as a SinkKind
            raise SettingsError(f"RECS_SINK must be one of {', '.join(SINK_KINDS)} (got {sink!r})")
        settings = cls(
            lake=env.get("RECS_LAKE") or "./lake",
            sink=sink,
            kinesis_stream=env.get("RECS_KINESIS_STREAM") or None,
            firehose_stream=env.get("RECS_FIREHOSE_STREAM") or None,
            event_log=Path(env.get("RECS_EVENT_LOG") or "./var/event-log.sqlite3"),
            buffer_mb=_number(env, "RECS_BUFFER_MB", 5.0, minimum=0.001),
            buffer_seconds=_number(env, "RECS_BUFFER_SECONDS", 300.0, minimum=0),
            history_days=_number(env, "RECS_HISTORY_DAYS", 30.0, minimum=0),
        )
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        settings.check()
        return settings

    def check(self) -> None:
        """Fail on combinations that cannot work, naming the variable to set."""
        if self.sink not in SINK_KINDS:
            raise SettingsError(
                f"RECS_SINK must be one of {', '.join(SINK_KINDS)} (got {self.sink!r})"
            )
        if self.sink == "kinesis" and not self.kinesis_stream:
            raise SettingsError("RECS_SINK=kinesis needs RECS_KINESIS_STREAM, the stream's name")
        if self.sink == "firehose" and not self.firehose_stream:
            raise SettingsError(
                "RECS_SINK=firehose needs RECS_FIREHOSE_STREAM, the delivery stream's name"
            )
