"""Lake I/O: one small interface over a folder on disk and an S3 prefix.

Every zone (raw, curated, quarantine, exports, models, batch, _state) is a key under one lake
URI: `./lake` or `s3://bucket/prefix`. Writes are atomic on both: on disk a file is written
beside its target and renamed into place, and an S3 PUT is atomic by itself. So a reader sees
a whole object or none.

S3 goes through boto3 (the client is passed in, or made on first use) rather than pyarrow's
C++ S3 client, so that moto's `mock_aws` emulates it in tests and one credential chain
(including AWS_ENDPOINT_URL) applies everywhere.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, Protocol

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

from common.errors import (
    DamagedObject,
    LakeError,
    LakeLocked,
    LakeNotFound,
    NotALake,
    SettingsError,
)
from common.layout import LOCKS, ZONES

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef


#: Temporary files of a write older than this were left by a killed writer: no single write
#: takes an hour.
ABANDONED_AFTER_S: Final = 3600.0


class Lake(Protocol):
    """Where the zones live. Keys are `/`-separated paths relative to the lake root."""

    @property
    def uri(self) -> str:
        """The lake's root as a URI (`/abs/path` or `s3://bucket/prefix`)."""
        ...

    def url(self, key: str) -> str:
        """The full URI of one key, for tools such as DuckDB or awswrangler."""
        ...

    def write_bytes(self, key: str, body: bytes) -> None:
        """Write a whole object atomically, replacing any object at that key."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """Read a whole object; raise `FileNotFoundError` if there is none."""
        ...

    def lines(self, key: str) -> Iterator[bytes]:
        """An object's lines, without their ends, read as they come: a file of gigabytes
        is never held whole. Raises `FileNotFoundError` if there is none."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object exists at the key."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under a prefix, in lexicographic order."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object if it exists."""
        ...

    def move(self, source: str, target: str) -> None:
        """Move an object to a new key, replacing any object there; the target appears whole."""
        ...

    def upload(self, key: str, path: Path) -> None:
        """Copy a local file, too big to hold in memory, to a key; the object appears whole."""
        ...

    def top_level(self) -> set[str] | None:
        """Names directly under the root (hidden ones left out); None if the root is missing."""
        ...

    def lock(self, name: str, *, lease_s: float) -> AbstractContextManager[None]:
        """Hold the lake-wide lock `name` for a block, or raise `LakeLocked` naming its holder.

        A holder that died frees it: at once on disk, after `lease_s` on S3.
        """
        ...

    def lock_held(self, name: str) -> bool:
        """Whether a live holder has the lake-wide lock `name` now (it takes nothing)."""
        ...

    def remove_abandoned(self, older_than_s: float = ABANDONED_AFTER_S) -> int:
        """Delete temporary files that killed writes left behind; return how many."""
        ...


def _clean_key(key: str) -> str:
    parts = key.split("/")
    if key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise LakeError(f"lake key {key!r} must be a relative path with no empty, . or .. parts")
    return key


def _fsync_dir(folder: Path) -> None:
    """Make a rename in this folder durable."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class LocalLake:
    """A lake in a folder on this machine."""

    root: Path

    @property
    def uri(self) -> str:
        """The absolute folder of the lake."""
        return str(self.root)

    def url(self, key: str) -> str:
        """The absolute path of a key."""
        return str(self.root / _clean_key(key))

    def _replace(self, key: str, fill: Callable[[BinaryIO], object]) -> None:
        """Fill a temporary file beside the target, fsync, then rename into place."""
        path = self.root / _clean_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                fill(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    def write_bytes(self, key: str, body: bytes) -> None:
        """Write to a temporary file beside the target, fsync, then rename into place."""
        self._replace(key, lambda handle: handle.write(body))

    def read_bytes(self, key: str) -> bytes:
        """Read one file."""
        return (self.root / _clean_key(key)).read_bytes()

    def lines(self, key: str) -> Iterator[bytes]:
        """The file's lines, read through a buffer."""
        with (self.root / _clean_key(key)).open("rb") as handle:
            for line in handle:
                yield line.rstrip(b"\r\n")

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return (self.root / _clean_key(key)).is_file()

    def list(self, prefix: str) -> Iterator[str]:
        """Files under a prefix, skipping the temporary files of writes in flight."""
        base = self.root / prefix.rstrip("/") if prefix else self.root
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return
        keys = []
        for dirpath, _dirnames, filenames in os.walk(start):
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        yield from sorted(keys)

    def delete(self, key: str) -> None:
        """Remove a file if present."""
        (self.root / _clean_key(key)).unlink(missing_ok=True)

    def upload(self, key: str, path: Path) -> None:
        """Copy beside the target, fsync, then rename into place."""

        def copy(handle: BinaryIO) -> None:
            with path.open("rb") as source:
                shutil.copyfileobj(source, handle, 1 << 20)

        self._replace(key, copy)

    def top_level(self) -> set[str] | None:
        """The folder's entries; None if it does not exist. A file there is not a lake."""
        if self.root.is_file():
            raise NotALake(
                f"{self.root} is a file, not a lake folder; point --lake or RECS_LAKE at a folder"
            )
        if not self.root.is_dir():
            return None
        return {p.name for p in self.root.iterdir() if not p.name.startswith(".")}

    @contextmanager
    def lock(self, name: str, *, lease_s: float) -> Iterator[None]:
        """An OS lock (flock) on `_state/locks/<name>.lock`: the kernel frees it if we die."""
        del lease_s  # a dead holder's flock is gone at once; no lease needed
        path = self.root / _clean_key(f"{LOCKS}/{name}.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        # The owner's alone, like every file of the lake (it names the holder's host and pid).
        with os.fdopen(os.open(path, os.O_CREAT | os.O_RDWR | os.O_APPEND, 0o600), "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                raise _locked(name, self.url(f"{LOCKS}/{name}.lock"), handle.read()) from None
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(_holder(None)))
                handle.flush()
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def lock_held(self, name: str) -> bool:
        """Whether a process holds the flock: a shared try on a read-only handle, let go at
        once (a dead holder's flock is gone with it)."""
        path = self.root / _clean_key(f"{LOCKS}/{name}.lock")
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing lets go of a lock this took
        return False

    def remove_abandoned(self, older_than_s: float = ABANDONED_AFTER_S) -> int:
        """Temporary files of writes (`.<name>.<random>.tmp`) older than `older_than_s`."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    path = Path(dirpath, name)
                    try:
                        if path.stat().st_mtime < cutoff:
                            path.unlink()
                            removed += 1
                    except FileNotFoundError:
                        continue  # its writer finished or another sweep took it
        return removed

    def move(self, source: str, target: str) -> None:
        """Rename within the lake (atomic on one file system), then fsync the folder."""
        path = self.root / _clean_key(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / _clean_key(source), path)
        _fsync_dir(path.parent)


@dataclass
class S3Lake:
    """A lake under an S3 prefix. The boto3 client is made on first use unless passed in."""

    bucket: str
    prefix: str = ""
    client: S3Client | None = field(default=None, repr=False)

    def _s3(self) -> S3Client:
        if self.client is None:
            import boto3

            self.client = boto3.client("s3")
        return self.client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{_clean_key(key)}" if self.prefix else _clean_key(key)

    def object_key(self, key: str) -> str:
        """The S3 object key of a lake key (for a service that reads the bucket itself)."""
        return self._key(key)

    @property
    def uri(self) -> str:
        """`s3://bucket/prefix`."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def url(self, key: str) -> str:
        """`s3://bucket/prefix/key`."""
        return f"s3://{self.bucket}/{self._key(key)}"

    def write_bytes(self, key: str, body: bytes) -> None:
        """One PUT: S3 makes the whole object visible at once."""
        self._s3().put_object(Bucket=self.bucket, Key=self._key(key), Body=body)

    def read_bytes(self, key: str) -> bytes:
        """One GET; a missing key raises `FileNotFoundError` as on disk."""
        s3 = self._s3()
        try:
            response = s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except s3.exceptions.NoSuchKey:
            raise FileNotFoundError(self.url(key)) from None
        body: bytes = response["Body"].read()
        return body

    def lines(self, key: str) -> Iterator[bytes]:
        """One GET, its body read in chunks as the lines are taken."""
        s3 = self._s3()
        try:
            response = s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except s3.exceptions.NoSuchKey:
            raise FileNotFoundError(self.url(key)) from None
        yield from response["Body"].iter_lines(chunk_size=1 << 20, keepends=False)

    def exists(self, key: str) -> bool:
        """Whether a key exists (one LIST call, so no 403/404 ambiguity of HEAD)."""
        full = self._key(key)
        response = self._s3().list_objects_v2(Bucket=self.bucket, Prefix=full, MaxKeys=1)
        return any(obj["Key"] == full for obj in response.get("Contents", []))

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under a prefix; S3 already lists them in lexicographic order."""
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self._s3().get_paginator("list_objects_v2")
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:]

    def delete(self, key: str) -> None:
        """Delete a key; S3 treats a missing key as success."""
        self._s3().delete_object(Bucket=self.bucket, Key=self._key(key))

    def upload(self, key: str, path: Path) -> None:
        """boto3's managed transfer: multipart above 8 MB; S3 shows the object when complete."""
        self._s3().upload_file(str(path), self.bucket, self._key(key))

    def top_level(self) -> set[str]:
        """Folders and objects directly under the prefix (one LIST); a missing bucket fails."""
        s3 = self._s3()
        prefix = f"{self.prefix}/" if self.prefix else ""
        try:
            response = s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        except s3.exceptions.NoSuchBucket:
            raise LakeNotFound(
                f"No lake at {self.uri}: the bucket {self.bucket} does not exist. Create it "
                "(infra/terraform makes the lake bucket) or fix --lake / RECS_LAKE"
            ) from None
        names = {p["Prefix"][len(prefix) :].rstrip("/") for p in response.get("CommonPrefixes", [])}
        names |= {o["Key"][len(prefix) :] for o in response.get("Contents", [])}
        return {name for name in names if name and not name.startswith(".")}

    @contextmanager
    def lock(self, name: str, *, lease_s: float) -> Iterator[None]:
        """A lock object created with a conditional PUT (`If-None-Match: *`), so two runs can
        never both create it; a holder past its lease is replaced with `If-Match` on the
        ETag it was seen with, so two runs can never both take it over."""
        s3 = self._s3()
        key = self._key(f"{LOCKS}/{name}.lock")
        body = json.dumps(_holder(lease_s)).encode()
        try:
            s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
        except s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "PreconditionFailed":
                raise
            current = s3.get_object(Bucket=self.bucket, Key=key)
            holder = current["Body"].read().decode("utf-8", "replace")
            if not _expired(holder):
                raise _locked(name, self.url(f"{LOCKS}/{name}.lock"), holder) from None
            try:
                s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfMatch=current["ETag"])
            except s3.exceptions.ClientError as late:
                if late.response.get("Error", {}).get("Code") != "PreconditionFailed":
                    raise
                # Another run took the expired lock between our read and our write.
                raise _locked(name, self.url(f"{LOCKS}/{name}.lock"), holder) from None
        try:
            yield
        finally:
            s3.delete_object(Bucket=self.bucket, Key=key)

    def lock_held(self, name: str) -> bool:
        """Whether the lock object exists within its lease (a dead holder's lasts until its
        lease runs out)."""
        try:
            holder = self.read_bytes(f"{LOCKS}/{name}.lock")
        except FileNotFoundError:
            return False
        return not _expired(holder.decode("utf-8", "replace"))

    def remove_abandoned(self, older_than_s: float = ABANDONED_AFTER_S) -> int:
        """Nothing to do: an S3 PUT leaves no partial object behind."""
        del older_than_s
        return 0

    def move(self, source: str, target: str) -> None:
        """Server-side copy, then delete the source (objects up to 5 GB, as ours are)."""
        s3 = self._s3()
        copy_source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": self._key(source)}
        try:
            s3.copy_object(Bucket=self.bucket, Key=self._key(target), CopySource=copy_source)
        except s3.exceptions.NoSuchKey:
            raise FileNotFoundError(self.url(source)) from None
        s3.delete_object(Bucket=self.bucket, Key=self._key(source))


def open_lake(uri: str, *, s3_client: S3Client | None = None) -> LocalLake | S3Lake:
    """Open the lake at a URI: a folder path, or `s3://bucket[/prefix]`."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise SettingsError(f"lake URI {uri!r} names no bucket; use s3://bucket/prefix")
        return S3Lake(bucket=bucket, prefix=prefix.strip("/"), client=s3_client)
    if "://" in uri:
        raise SettingsError(
            f"lake URI {uri!r} is not supported; use a folder path or s3://bucket/prefix"
        )
    return LocalLake(Path(uri).expanduser().resolve())


def _holder(lease_s: float | None) -> dict[str, Any]:
    now = datetime.now(UTC)
    holder: dict[str, Any] = {
        "owner": f"{socket.gethostname()}:{os.getpid()}",
        "since": now.isoformat(timespec="seconds"),
    }
    if lease_s is not None:
        holder["expires"] = (now + timedelta(seconds=lease_s)).isoformat(timespec="seconds")
    return holder


def _expired(text: str) -> bool:
    """Whether a lock object's lease has run out (an unreadable one has: it cannot be ours)."""
    try:
        expires = datetime.fromisoformat(json.loads(text)["expires"])
    except (ValueError, KeyError, TypeError):
        return True
    return expires < datetime.now(UTC)


def _locked(name: str, where: str, text: str) -> LakeLocked:
    try:
        holder = json.loads(text)
        who = f"{holder['owner']} since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        who = "another process"
    return LakeLocked(
        f"the lake's {name} lock is held by {who} ({where}); only one {name} run may work "
        "on a lake at a time. Run again when it has finished"
    )


def damaged(lake: Lake, key: str, problem: object) -> DamagedObject:
    """The error for an object recs wrote that no longer reads back, and what to do."""
    return DamagedObject(
        f"{lake.url(key)} cannot be read: {problem}. It was damaged or edited by hand; "
        "restore it from a backup or from the bucket's object versions"
    )


def read_json(lake: Lake, key: str) -> Any:
    """A JSON document of the lake; `DamagedObject` if it does not parse.

    A missing key raises `FileNotFoundError`, for the caller to say what to run first.
    """
    body = lake.read_bytes(key)
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise damaged(lake, key, f"not valid JSON ({exc})") from None


def check_lake(lake: Lake, *, create: bool) -> None:
    """Fail unless `lake` is a lake, or (with `create`) a new or empty place to start one.

    Raises `LakeNotFound` for a missing or empty lake when reading, and `NotALake` for a
    folder or prefix that holds other things, so that no command reads or writes there.
    """
    entries = lake.top_level()
    if not entries:
        if create:
            return
        state = "the folder does not exist" if entries is None else "it is empty"
        raise LakeNotFound(
            f"No lake at {lake.uri}: {state}. Start one with `recs generate` (a demo shop) or "
            "`recs import` (your shop's data), or point --lake or RECS_LAKE at your lake"
        )
    if not entries & ZONES:
        shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
        raise NotALake(
            f"{lake.uri} is not a recs lake: it holds {shown} but none of the lake's folders "
            f"({', '.join(sorted(ZONES))}). Point --lake or RECS_LAKE at a lake, or at a new or "
            "empty folder to start one"
        )


def lake_for_reading(uri: str) -> LocalLake | S3Lake:
    """Open an existing lake; fail, saying what to do, if there is none at `uri`."""
    lake = open_lake(uri)
    check_lake(lake, create=False)
    return lake


def lake_for_writing(uri: str) -> LocalLake | S3Lake:
    """Open a lake to write to: an existing one, or a new or empty folder or prefix."""
    lake = open_lake(uri)
    check_lake(lake, create=True)
    return lake
