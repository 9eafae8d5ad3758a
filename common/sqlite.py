"""One SQLite connection per thread, opened on first use, with the pragmas its owner needs.

The event log, the online store and the idempotency records each keep a SQLite file that
several threads (a server's workers, a background flusher) use at once. A `sqlite3`
connection must not cross threads, so each thread gets its own, in autocommit mode
(`isolation_level=None`): callers say BEGIN themselves when they want a transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class ThreadConnections:
    """A SQLite file's connections, one per thread (WAL journal, 30 s busy timeout)."""

    def __init__(self, path: Path, pragmas: Sequence[str] = ()) -> None:
        self.path = path
        self._pragmas = ("journal_mode=WAL", *pragmas)
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created for its owner alone, like the lake's files: it holds shoppers' events. SQLite
        # gives the -wal and -shm files the database file's permissions.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            for pragma in self._pragmas:
                con.execute(f"PRAGMA {pragma}")
            self._local.con = con
        return con

    @contextmanager
    def transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """BEGIN (IMMEDIATE: take the write lock now), then COMMIT, or ROLLBACK on any error."""
        con = self.get()
        con.execute(f"BEGIN {mode}")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection, if it opened one."""
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
