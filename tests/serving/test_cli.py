"""`recs publish` and the commands that publish with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingestion.test_cli import run


def test_publish_force_still_works_and_says_what_replaces_it(tmp_path: Path) -> None:
    (tmp_path / "lake" / "models").mkdir(parents=True)
    result = run("publish", "--force", "20261101T000000Z", cwd=tmp_path)
    assert "Deprecated: recs publish --force goes in 0.2; use recs models promote" in result.stderr


@pytest.mark.parametrize("command", [["publish"], ["models", "promote"]])
def test_publishing_commands_open_the_store_the_settings_describe(
    tmp_path: Path, command: list[str]
) -> None:
    """`recs publish`, `recs models promote` and the pipeline open the store one way: an
    import publish needs an S3 lake (`recs publish` once wrote rows, ignoring the setting)."""
    (tmp_path / "lake" / "models" / "20261101T000000Z").mkdir(parents=True)
    (tmp_path / "lake" / "models" / "20261101T000000Z" / "manifest.json").write_text("{}")
    env = {"RECS_STORE": "dynamodb://t", "RECS_STORE_PUBLISH": "import"}
    result = run(*command, "20261101T000000Z", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "RECS_STORE_PUBLISH=import stages each version in the S3 lake" in result.stderr
