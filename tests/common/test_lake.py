"""One suite for every Lake adapter: a folder on disk, and S3 under moto."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from common.errors import DamagedObject, LakeError, LakeNotFound, NotALake, SettingsError
from common.lake import LocalLake, S3Lake, check_lake, open_lake, read_json


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


def test_local_files_and_locks_are_the_owners_alone(tmp_path: Path) -> None:
    """Before: a lock file was created 0644, unlike every other file of the lake."""
    lake = LocalLake(tmp_path)
    lake.write_bytes("raw/a.json", b"{}")
    with lake.lock("etl", lease_s=60):
        pass
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.rglob("*") if p.is_file()}
    assert modes == {"a.json": 0o600, "etl.lock": 0o600}


def test_lock_held_says_whether_someone_holds_a_lock(lake: LocalLake | S3Lake) -> None:
    assert not lake.lock_held("pipeline")
    with lake.lock("pipeline", lease_s=60):
        assert lake.lock_held("pipeline")
    assert not lake.lock_held("pipeline")


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


def test_a_new_lake_may_be_started_but_not_read(lake: LocalLake | S3Lake) -> None:
    check_lake(lake, create=True)
    with pytest.raises(LakeNotFound, match=f"No lake at {lake.uri}: "):
        check_lake(lake, create=False)


def test_a_lake_is_known_by_its_zones(lake: LocalLake | S3Lake) -> None:
    lake.write_bytes("raw/events/x", b"x")
    assert lake.top_level() == {"raw"}
    check_lake(lake, create=False)
    check_lake(lake, create=True)


def test_a_place_holding_other_things_is_not_a_lake(lake: LocalLake | S3Lake) -> None:
    lake.write_bytes("photos/cat.jpg", b"x")
    lake.write_bytes("notes.txt", b"x")
    for create in (True, False):
        with pytest.raises(NotALake, match=r"is not a recs lake: it holds notes\.txt, photos"):
            check_lake(lake, create=create)


@pytest.mark.aws
def test_a_missing_bucket_is_named(aws_env: None) -> None:
    with mock_aws():
        lake = S3Lake("no-such-bucket", "lake", client=boto3.client("s3"))
        with pytest.raises(LakeNotFound, match="the bucket no-such-bucket does not exist"):
            check_lake(lake, create=True)


def test_damaged_json_is_named(lake: LocalLake | S3Lake) -> None:
    lake.write_bytes("models/production.json", b"{")
    with pytest.raises(DamagedObject, match=r"production\.json cannot be read: not valid JSON"):
        read_json(lake, "models/production.json")
    with pytest.raises(FileNotFoundError):
        read_json(lake, "models/none.json")


def test_lines_are_read_as_they_come_with_no_line_ends(lake: Any) -> None:
    """A big shop's batch file is gigabytes: publish reads it line by line."""
    lake.write_bytes("batch/v1/users.jsonl", b"one\ntwo\r\n\nfour\n")
    assert list(lake.lines("batch/v1/users.jsonl")) == [b"one", b"two", b"", b"four"]
    with pytest.raises(FileNotFoundError):
        list(lake.lines("batch/v1/none.jsonl"))
