"""One suite for every Lake adapter: a folder on disk, and S3 under moto."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import SettingsError
from ingestion.errors import LakeError
from ingestion.lake import LocalLake, S3Lake, open_lake


def test_write_read_roundtrip_and_replace(lake: LocalLake | S3Lake) -> None:
    lake.write_bytes("raw/events/2025/08/16/18/a.gz", b"one")
    lake.write_bytes("raw/events/2025/08/16/18/a.gz", b"two")
    assert lake.read_bytes("raw/events/2025/08/16/18/a.gz") == b"two"
    assert lake.exists("raw/events/2025/08/16/18/a.gz")
    assert not lake.exists("raw/events/2025/08/16/18/a")


def test_list_is_sorted_and_scoped_to_the_prefix(lake: LocalLake | S3Lake) -> None:
    for key in (
        "raw/events/2025/08/16/19/b",
        "raw/events/2025/08/16/18/a",
        "raw/catalog/x/items.jsonl",
        "raw/eventsX/c",
    ):
        lake.write_bytes(key, b"x")
    assert list(lake.list("raw/events/")) == [
        "raw/events/2025/08/16/18/a",
        "raw/events/2025/08/16/19/b",
    ]
    assert list(lake.list("nothing/here/")) == []


def test_missing_key_raises_file_not_found(lake: LocalLake | S3Lake) -> None:
    with pytest.raises(FileNotFoundError):
        lake.read_bytes("raw/none")


def test_delete_is_idempotent(lake: LocalLake | S3Lake) -> None:
    lake.write_bytes("a/b", b"x")
    lake.delete("a/b")
    lake.delete("a/b")
    assert not lake.exists("a/b")


def test_move_replaces_the_target_and_removes_the_source(lake: LocalLake | S3Lake) -> None:
    lake.write_bytes("_state/etl/staging/r1/curated/x.parquet", b"new")
    lake.write_bytes("curated/x.parquet", b"old")
    lake.move("_state/etl/staging/r1/curated/x.parquet", "curated/x.parquet")
    assert lake.read_bytes("curated/x.parquet") == b"new"
    assert list(lake.list("_state/")) == []
    with pytest.raises(FileNotFoundError):
        lake.move("_state/etl/staging/r1/curated/x.parquet", "curated/x.parquet")


@pytest.mark.parametrize("key", ["/abs", "a/../b", "a//b", "./a", ""])
def test_keys_that_escape_the_lake_are_refused(lake: LocalLake | S3Lake, key: str) -> None:
    with pytest.raises(LakeError, match="relative path"):
        lake.write_bytes(key, b"x")


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.write_bytes("a/b.gz", b"x" * 1000)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.gz"]


def test_open_lake_parses_uris(tmp_path: Path) -> None:
    assert open_lake(str(tmp_path)) == LocalLake(tmp_path.resolve())
    s3 = open_lake("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Lake)
    assert (s3.bucket, s3.prefix, s3.url("raw/x")) == (
        "bucket",
        "some/prefix",
        "s3://bucket/some/prefix/raw/x",
    )
    with pytest.raises(SettingsError, match="names no bucket"):
        open_lake("s3://")
    with pytest.raises(SettingsError, match="not supported"):
        open_lake("gs://bucket")
