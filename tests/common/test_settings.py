"""Settings are read once from the environment, and fail naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import SettingsError
from common.settings import settings_file, unknown_keys
from etl.settings import EtlSettings
from ingestion.settings import IngestionSettings
from serving.settings import ServingSettings


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


def test_a_settings_file_holds_every_stage_and_the_environment_beats_it(tmp_path: Path) -> None:
    config = tmp_path / "prod.toml"
    config.write_text(
        'lake = "s3://shop/lake"\nsink = "kinesis"\nkinesis_stream = "events"\n'
        'store = "dynamodb://recs-store"\napi_keys = ["k1", "k2"]\netl_batch_mb = 48\n'
    )
    env = {"RECS_CONFIG": str(config), "RECS_KINESIS_STREAM": "other"}
    ingestion = IngestionSettings.from_env(env)
    assert (ingestion.lake, ingestion.sink, ingestion.kinesis_stream) == (
        "s3://shop/lake",
        "kinesis",
        "other",
    )
    serving = ServingSettings.from_env({**env, "RECS_HISTORY": "dynamodb://history"})
    assert (serving.store, serving.api_keys) == ("dynamodb://recs-store", frozenset({"k1", "k2"}))
    assert EtlSettings.from_env(env).etl_batch_mb == 48
    assert EtlSettings.from_env(env, etl_batch_mb="12").etl_batch_mb == 12


@pytest.mark.parametrize(
    ("content", "overrides", "message"),
    [
        ("buffer_mb = -1\n", {}, "buffer_mb in {path} must be at least 0.001 (got -1)"),
        ('sink = "kafka"\n', {}, "sink in {path} must be one of local, kinesis, firehose"),
        ("", {"buffer_seconds": "soon"}, "--buffer-seconds must be a number (got 'soon')"),
        ("lake = [1, 2\n", {}, "{path} is not valid TOML"),
    ],
)
def test_a_bad_value_names_where_it_came_from(
    tmp_path: Path, content: str, overrides: dict[str, str], message: str
) -> None:
    config = tmp_path / "recs.toml"
    config.write_text(content)
    with pytest.raises(SettingsError) as refused:
        IngestionSettings.from_env({"RECS_CONFIG": str(config)}, **overrides)
    assert message.format(path=config) in str(refused.value)


def test_the_first_readmes_campaign_variable_is_honoured() -> None:
    arn = "arn:aws:personalize:us-east-1:1:campaign/shop"
    assert (
        ServingSettings.from_env({"PERSONALIZE_CAMPAIGN_ARN": arn}).personalize_campaign_arn == arn
    )
    assert (
        ServingSettings.from_env({"RECS_PERSONALIZE_CAMPAIGN_ARN": arn}).personalize_campaign_arn
        == arn
    )
    with pytest.raises(SettingsError, match="PERSONALIZE_CAMPAIGN_ARN must be a campaign ARN"):
        ServingSettings.from_env({"PERSONALIZE_CAMPAIGN_ARN": "campaign"})


def test_empty_variables_count_as_unset() -> None:
    assert IngestionSettings.from_env({"RECS_LAKE": "", "RECS_BUFFER_MB": ""}).lake == "./lake"


def test_unknown_keys_of_a_settings_file_are_found(tmp_path: Path) -> None:
    config = tmp_path / "recs.toml"
    config.write_text('lake = "./lake"\nlakee = "./typo"\npersonalize_campaign_arn = "arn:aws:x"\n')
    found = settings_file({"RECS_CONFIG": str(config)})
    assert found is not None
    assert unknown_keys(found) == ["lakee"]


def test_the_readme_lists_every_setting_with_its_variable_and_flag() -> None:
    import orchestration.cli  # noqa: F401 - registers every stage's settings model
    from common.settings import RecsSettings, flag, variable

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| `")
    }
    listed = {name for cell in rows for name in cell.replace("`", " ").replace("(", " ").split()}
    for model in RecsSettings.registry:
        for name, field in model.model_fields.items():
            assert variable(name, field) in listed, f"README lacks {variable(name, field)}"
            row = next(
                r
                for c, r in rows.items()
                if variable(name, field) in c.replace("`", " ").replace("(", " ").split()
            )
            assert f"`{flag(name)}`" in row, f"README's {variable(name, field)} lacks {flag(name)}"


def test_only_recs_variables_are_read_and_reported() -> None:
    env = {"LAKE": "/elsewhere", "SINK": "kinesis"}
    settings = IngestionSettings.from_env(env)
    assert (settings.lake, settings.sink) == ("./lake", "local")
    assert settings.source_of("lake", env) == "default"
    assert settings.source_of("lake", {"RECS_LAKE": "/x"}) == "RECS_LAKE"


@pytest.mark.parametrize("keys", [",", " , ,"])
def test_api_keys_that_list_no_key_are_refused(keys: str) -> None:
    with pytest.raises(SettingsError, match="RECS_API_KEYS lists no key"):
        ServingSettings.from_env({"RECS_API_KEYS": keys})
    assert ServingSettings.from_env({"RECS_API_KEYS": "k1, k2,"}).api_keys == {"k1", "k2"}


def test_an_old_spelling_still_works_for_a_release_with_a_warning(tmp_path: Path) -> None:
    with pytest.warns(FutureWarning, match="RECS_SERVE_LOG_FILE is deprecated .* RECS_LOG_FILE"):
        settings = ServingSettings.from_env({"RECS_SERVE_LOG_FILE": "var/serve.log"})
    assert settings.log_file == Path("var/serve.log")
    with pytest.warns(FutureWarning, match="RECS_HISTORY_TABLE is deprecated"):
        settings = ServingSettings.from_env({"RECS_HISTORY_TABLE": "t", "RECS_SINK": "kinesis",
                                             "RECS_KINESIS_STREAM": "s"})  # fmt: skip
    assert (settings.history, settings.history_table) == ("dynamodb://t", "t")
    # The new spelling wins where both are set.
    with pytest.warns(FutureWarning):
        both = ServingSettings.from_env({"RECS_SERVE_LOG_FILE": "old", "RECS_LOG_FILE": "new"})
    assert both.log_file == Path("new")
    config = tmp_path / "recs.toml"
    config.write_text('history_table = "from-file"\n')
    with pytest.warns(FutureWarning, match=f"history_table in {config} is deprecated"):
        found = settings_file({"RECS_CONFIG": str(config)})
    assert found is not None
    assert found.values == {"history": "dynamodb://from-file"}


def test_each_setting_is_declared_by_one_model() -> None:
    """A setting's field is written in one settings class; the others inherit it."""
    import orchestration.cli  # noqa: F401 - registers every stage's settings model
    from common.settings import RecsSettings

    declared: dict[str, list[str]] = {}
    for model in RecsSettings.registry:
        for name in model.__annotations__:
            if name in model.model_fields:
                declared.setdefault(name, []).append(model.__name__)
    twice = {name: owners for name, owners in declared.items() if len(owners) > 1}
    assert not twice, twice
