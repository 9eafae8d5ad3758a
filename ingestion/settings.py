"""Settings of the ingestion entry points: where the lake is and where events go.

Read once per entry point through `common.settings` (a flag beats the environment, which
beats recs.toml). The AWS endpoint is not ours to read: boto3 honours `AWS_ENDPOINT_URL` (and
`AWS_ENDPOINT_URL_<SERVICE>`) itself, so the same code talks to AWS or to an emulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from common.dynamodb import table_name
from common.settings import LakeSettings, RecsSettings

SinkKind = Literal["local", "kinesis", "firehose"]


class IngestionSettings(LakeSettings):
    """Where events go, and how the local sink buffers them."""

    sink: SinkKind = Field("local", description="Where events go: local, kinesis or firehose")
    kinesis_stream: str | None = Field(
        None, description="Kinesis stream name or ARN, with sink kinesis"
    )
    firehose_stream: str | None = Field(
        None, description="Firehose delivery stream, with sink firehose"
    )
    event_log: Path = Field(
        Path("./var/event-log.sqlite3"), description="The local sink's SQLite event log"
    )
    buffer_mb: float = Field(
        5.0, ge=0.001, description="Local sink: flush when this many MiB wait (Firehose's hint)"
    )
    buffer_seconds: float = Field(
        300.0, ge=0, description="Local sink: flush when the oldest event has waited this long"
    )
    history_days: float = Field(
        30.0, ge=0, description="How long the local event log keeps events for recent history"
    )

    @model_validator(mode="after")
    def _stream_for_sink(self) -> Self:
        if self.sink == "kinesis" and not self.kinesis_stream:
            raise ValueError("RECS_SINK=kinesis needs RECS_KINESIS_STREAM, the stream's name")
        if self.sink == "firehose" and not self.firehose_stream:
            raise ValueError(
                "RECS_SINK=firehose needs RECS_FIREHOSE_STREAM, the delivery stream's name"
            )
        return self


class HistorySettings(RecsSettings):
    """Where accepted events are kept for realtime answers, and forwarded to Personalize.

    The API reads the history and, with the local sink, forwards; the Kinesis consumer fills
    the DynamoDB history and, with the Kinesis sink, forwards. Both read these two settings.
    """

    history: str = Field(
        "local",
        description="Recent history for realtime answers: local (the event log) or "
        "dynamodb://table (which the Kinesis consumer fills)",
    )
    personalize_tracking_id: str | None = Field(
        None,
        description="Forward accepted events to this Personalize event tracker (the "
        "`tracking_id` in a Personalize version's manifest): the API does with the local "
        "sink, the Kinesis consumer with RECS_SINK=kinesis",
    )

    @field_validator("history")
    @classmethod
    def _history(cls, value: str) -> str:
        table = table_name(value)
        if value != "local" and table is None:
            raise ValueError("must be local or dynamodb://table")
        if table == "":
            raise ValueError("names no table; use dynamodb://table-name")
        return value

    @property
    def history_table(self) -> str | None:
        """The DynamoDB history table's name, or None for the local event log."""
        return table_name(self.history)
