"""A run killed at any write, then run again, leaves exactly what one clean run leaves."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from common.lake import LocalLake
from etl.job import run_etl
from tests.etl_helpers import NOW, PLANTED_BAD, content, plant_shop


class Killed(BaseException):
    """Stands for SIGKILL: nothing may catch it, not even `except Exception`."""


@dataclass
class DyingLake:
    """A lake that dies at its n-th change (write, move, delete, upload)."""

    inner: LocalLake
    die_at: int
    changes: int = 0
    log: list[str] = field(default_factory=list)

    def _change(self, what: str) -> None:
        self.changes += 1
        self.log.append(what)
        if self.changes == self.die_at:
            raise Killed(what)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def write_bytes(self, key: str, body: bytes) -> None:
        self._change(f"write {key}")
        self.inner.write_bytes(key, body)

    def move(self, source: str, target: str) -> None:
        self._change(f"move {target}")
        self.inner.move(source, target)

    def delete(self, key: str) -> None:
        self._change(f"delete {key}")
        self.inner.delete(key)

    def upload(self, key: str, path: Path) -> None:
        self._change(f"upload {key}")
        self.inner.upload(key, path)


def _fresh(tmp_path: Path, name: str) -> LocalLake:
    lake = LocalLake(tmp_path / name)
    plant_shop(lake, events=EVENTS, days=3)
    return lake


EVENTS = 1500


def test_killed_at_every_change_then_rerun_matches_a_clean_run(tmp_path: Path) -> None:
    clean = _fresh(tmp_path, "clean")
    counting = DyingLake(clean, die_at=0)
    run_etl(counting, now=NOW, batch_bytes=32 << 10)  # type: ignore[arg-type]
    expected = content(clean)
    assert counting.changes >= 20  # several batches, files, the bookmark, the moves
    assert len(expected["interactions"]) == EVENTS + 1  # the shop and one planted good line
    assert len(expected["quarantine"]) == len(PLANTED_BAD)
    assert set(expected["catalog"]) == {
        "curated/items/items.parquet",
        "curated/users/users.parquet",
    }
    assert expected["staging"] == []

    for die_at in range(1, counting.changes + 1):
        lake = _fresh(tmp_path, f"killed-{die_at}")
        with pytest.raises(Killed):
            run_etl(DyingLake(lake, die_at=die_at), now=NOW, batch_bytes=32 << 10)  # type: ignore[arg-type]
        # A crash early in the recovery (when it has anything to do) harms nothing either.
        with contextlib.suppress(Killed):
            run_etl(DyingLake(lake, die_at=2), now=NOW, batch_bytes=32 << 10)  # type: ignore[arg-type]
        run_etl(lake, now=NOW, batch_bytes=32 << 10)
        assert content(lake) == expected, counting.log[die_at - 1]
        assert run_etl(lake, now=NOW).nothing_new
