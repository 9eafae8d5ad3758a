"""Every command, pointed at the wrong place or at bad data: one line saying what was wrong
and what to do, exit status 2, and never a traceback.

The commands run in-process through click's runner, with exceptions not caught by the runner:
an error that escapes a command fails the test instead of printing a traceback to a user.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from common.lake import LocalLake
from orchestration.cli import recs
from tests.etl_helpers import plant_shop

READERS = [
    ["etl"],
    ["export", "personalize"],
    ["sql", "-c", "SELECT 1"],
    ["train"],
    ["evaluate"],
    ["publish"],
    ["serve"],
]
WRITERS = [
    ["generate", "--events", "100", "--users", "20", "--items", "10"],
    ["import", "--users", "users.csv"],
    ["ingest", "-"],
    ["flush"],
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder with no RECS_* settings from the machine."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("RECS_")]:
        monkeypatch.delenv(name)
    # `recs --config` sets RECS_CONFIG in this process; set here, it is undone after each
    # test (empty means unset).
    monkeypatch.setenv("RECS_CONFIG", "")
    (tmp_path / "users.csv").write_text("USER_ID,TIER\nU1,gold\n")
    return tmp_path


def fails(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Result:
    """Run `recs ARGS`; it must fail with status 2 and a one-line reason."""
    result = CliRunner().invoke(recs, list(args), input=stdin, env=env, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result


def _id(args: list[str]) -> str:
    return " ".join(args[:2])


@pytest.mark.parametrize("args", READERS, ids=_id)
def test_a_missing_lake_is_named_with_what_to_do(workdir: Path, args: list[str]) -> None:
    result = fails(*args, "--lake", "missing")
    assert f"No lake at {workdir / 'missing'}: the folder does not exist" in result.output
    assert "recs generate" in result.output


@pytest.mark.parametrize("args", READERS, ids=_id)
def test_an_empty_folder_is_no_lake_to_read(workdir: Path, args: list[str]) -> None:
    (workdir / "empty").mkdir()
    result = fails(*args, "--lake", "empty")
    assert "it is empty" in result.output


@pytest.mark.parametrize("args", READERS + WRITERS, ids=_id)
def test_a_folder_of_other_things_is_not_a_lake(workdir: Path, args: list[str]) -> None:
    (workdir / "docs").mkdir()
    (workdir / "docs" / "notes.txt").write_text("not a lake")
    result = fails(*args, "--lake", "docs")
    assert f"{workdir / 'docs'} is not a recs lake: it holds notes.txt" in result.output
    assert not (workdir / "docs" / "raw").exists()


@pytest.mark.parametrize("args", READERS + WRITERS, ids=_id)
def test_a_file_is_not_a_lake(workdir: Path, args: list[str]) -> None:
    (workdir / "lake.txt").write_text("")
    result = fails(*args, "--lake", "lake.txt")
    assert "is a file, not a lake folder" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "nope.csv"], "nope.csv does not exist"),
        (["import", "--items", "."], ". is a folder, not a file"),
        (["ingest", "nope.jsonl"], "nope.jsonl is not a file"),
        (["openapi", "--out", "no/such/folder/spec.yaml"], "No such file or directory"),
        (["publish", "--store", "redis://cache"], "--store must be a file path or dynamodb://"),
        (["serve", "--api-keys", ",", "--cors-origins", "ftp://x"], "--cors-origins must list"),
        (["etl", "--etl-batch-mb", "0"], "--etl-batch-mb must be at least 1 (got '0')"),
        (["ingest", "--buffer-mb", "lots"], "--buffer-mb must be a number (got 'lots')"),
        (["train", "--backend", "personalize", "--export", "x"], "RECS_PERSONALIZE_ROLE_ARN"),
    ],
    ids=lambda v: v if isinstance(v, str) else _id(v),
)
def test_bad_arguments_are_named(workdir: Path, args: list[str], message: str) -> None:
    assert message in fails(*args).output


@pytest.fixture
def shop(workdir: Path) -> Path:
    """A small curated lake in ./lake, the default."""
    plant_shop(LocalLake(workdir / "lake"))
    assert CliRunner().invoke(recs, ["etl"], catch_exceptions=False).exit_code == 0
    return workdir / "lake"


def test_nothing_trained_yet_says_what_to_run(shop: Path) -> None:
    assert "run `recs train` first" in fails("publish").output
    assert "none in production; run `recs publish`" in fails("evaluate").output


def test_a_damaged_curated_file_is_named_not_a_traceback(shop: Path) -> None:
    damaged = sorted(shop.glob("curated/interactions/*/*.parquet"))[0]
    damaged.write_bytes(b"not parquet")
    for args in (["train"], ["export", "personalize"], ["sql", "-c", "SELECT 1"]):
        result = fails(*args)
        assert "cannot read the curated zone" in result.output
        assert "restore it from a backup" in result.output


def test_a_damaged_bookmark_is_named(shop: Path) -> None:
    (shop / "_state/etl/bookmark.json").write_text("[")
    result = fails("etl")
    assert "_state/etl/bookmark.json cannot be read: not an ETL bookmark" in result.output


def test_damaged_model_files_are_named(shop: Path) -> None:
    trained = CliRunner().invoke(recs, ["train"], catch_exceptions=False)
    assert trained.exit_code == 0, trained.output
    [manifest] = shop.glob("models/*/manifest.json")
    batch = manifest.parents[2] / "batch" / manifest.parent.name / "users.jsonl"
    batch.write_text('{"input": {"userId": "U1"}}\n')
    result = fails("publish", "--force")
    assert "users.jsonl cannot be read: line 1 is not a batch record" in result.output
    manifest.write_text("{")
    assert "manifest.json cannot be read: not valid JSON" in fails("publish").output


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('lake = "./lake"\nlakee = "typo"\n', "lakee is not a setting; `recs settings` lists"),
        ("buffer_mb = 'lots'\n", "buffer_mb in recs.toml must be a number (got 'lots')"),
        ("lake = [\n", "recs.toml is not valid TOML"),
        ('[ingestion]\nlake = "./lake"\n', "[ingestion] is a table; write every setting at the"),
    ],
)
def test_a_bad_settings_file_is_named(workdir: Path, config: str, message: str) -> None:
    (workdir / "recs.toml").write_text(config)
    assert message in fails("ingest", "-").output


def test_a_missing_settings_file_is_named(workdir: Path) -> None:
    result = fails("--config", "prod.toml", "settings")
    assert "RECS_CONFIG names prod.toml, which is not a file" in result.output


def test_settings_come_from_flag_then_environment_then_file(workdir: Path) -> None:
    (workdir / "recs.toml").write_text(
        'lake = "./from-file"\nbuffer_mb = 8\nstore = "s.db"\n'
        "[filters.under]\nexpression = 'EXCLUDE ItemID WHERE Items.PRICE > $MAX'\n"
    )
    result = CliRunner().invoke(
        recs, ["settings"], env={"RECS_BUFFER_MB": "2"}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert (
        "under: EXCLUDE ItemID WHERE Items.PRICE > $MAX  (filters in recs.toml" in lines["filters"]
    )
    assert "./from-file  (lake in recs.toml; --lake)" in lines["lake"]
    assert "2.0  (RECS_BUFFER_MB; --buffer-mb)" in lines["buffer_mb"]
    assert "./var/idempotency.sqlite3  (default; --idempotency-store)" in lines["idempotency_store"]
    assert "api_keys" in lines
    # A flag beats both: ingest writes where --lake says, not where the file says.
    done = CliRunner().invoke(
        recs,
        ["ingest", "--lake", "flagged", "-"],
        input='{"userId":"U1","itemId":"I1","event_type":"view"}\n',
        env={"RECS_LAKE": "from-env"},
        catch_exceptions=False,
    )
    assert done.exit_code == 0, done.output
    assert (workdir / "flagged" / "raw").is_dir()
    assert not (workdir / "from-env").exists()
    assert not (workdir / "from-file").exists()
