"""The shared SQLite connections: one per thread, and files only their owner can read."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from common.sqlite import ThreadConnections


def test_the_database_and_its_journal_are_created_for_their_owner_only(tmp_path: Path) -> None:
    connections = ThreadConnections(tmp_path / "var" / "events.sqlite3")
    with connections.transaction() as con:
        con.execute("CREATE TABLE t (x)")
        con.execute("INSERT INTO t VALUES (1)")
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "var").iterdir()}
    assert modes == {
        "events.sqlite3": 0o600,
        "events.sqlite3-wal": 0o600,
        "events.sqlite3-shm": 0o600,
    }


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    path.touch()
    os.chmod(path, 0o640)
    ThreadConnections(path).get().execute("CREATE TABLE t (x)")
    assert path.stat().st_mode & 0o777 == 0o640


def test_each_thread_gets_its_own_connection(tmp_path: Path) -> None:
    connections = ThreadConnections(tmp_path / "x.sqlite3")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(connections.get()))
    thread.start()
    thread.join()
    assert seen[0] is not connections.get()
    assert connections.get() is connections.get()


def test_a_failed_transaction_is_rolled_back(tmp_path: Path) -> None:
    connections = ThreadConnections(tmp_path / "x.sqlite3")
    connections.get().execute("CREATE TABLE t (x)")
    try:
        with connections.transaction() as con:
            con.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    assert connections.get().execute("SELECT count(*) FROM t").fetchone() == (0,)
