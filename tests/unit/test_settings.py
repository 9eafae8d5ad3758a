"""Settings are read once from the environment, and fail naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import SettingsError
from ingestion.settings import IngestionSettings


def test_defaults_are_the_embedded_local_setup() -> None:
    settings = IngestionSettings.from_env({})
    assert (settings.lake, settings.sink, settings.event_log) == (
        "./lake",
        "local",
        Path("./var/event-log.sqlite3"),
    )
    assert (settings.buffer_mb, settings.buffer_seconds) == (5.0, 300.0)


def test_environment_is_read_and_arguments_win() -> None:
    env = {
        "RECS_LAKE": "s3://bucket/p",
        "RECS_SINK": "kinesis",
        "RECS_KINESIS_STREAM": "events",
        "RECS_BUFFER_MB": "1.5",
    }
    settings = IngestionSettings.from_env(env)
    assert (settings.lake, settings.sink, settings.kinesis_stream, settings.buffer_mb) == (
        "s3://bucket/p",
        "kinesis",
        "events",
        1.5,
    )
    assert IngestionSettings.from_env(env, lake="./other", sink="local").lake == "./other"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RECS_SINK": "kafka"}, "RECS_SINK must be one of local, kinesis, firehose (got 'kafka')"),
        ({"RECS_SINK": "kinesis"}, "RECS_SINK=kinesis needs RECS_KINESIS_STREAM"),
        ({"RECS_SINK": "firehose"}, "RECS_SINK=firehose needs RECS_FIREHOSE_STREAM"),
        ({"RECS_BUFFER_MB": "lots"}, "RECS_BUFFER_MB must be a number (got 'lots')"),
        ({"RECS_BUFFER_SECONDS": "-1"}, "RECS_BUFFER_SECONDS must be at least 0"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        IngestionSettings.from_env(env)


def test_the_real_environment_is_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECS_LAKE", "/data/lake")
    assert IngestionSettings.from_env().lake == "/data/lake"
