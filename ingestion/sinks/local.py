"""The local sink: a durable SQLite event log, flushed to the raw zone in Firehose's layout.

Guarantees, in the order events live through them:

1. `append` returns only after the events are committed to the log (WAL, synchronous=FULL):
   an acknowledged event survives a crash of the process or the machine.
2. A flush first *claims* a run of unflushed events for a new batch and records the batch's
   object key, in one transaction. Only then is the object written (atomically), and only
   after that is the batch marked committed.
3. A batch left pending by a crash is finished on the next open or flush: its object is
   rewritten from the same events to the same key. Each event belongs to exactly one batch
   and each batch to exactly one key, so no event reaches the raw zone twice.

The log also answers "what did this user do recently", for realtime recommendations.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

from common.contract import Event
from common.lake import Lake
from common.sqlite import ThreadConnections
from ingestion.errors import IngestionError
from ingestion.history import RecentEvent
from ingestion.raw import event_object_key, gzip_bytes, join_lines

LOCAL_STREAM: Final = "recs-local"
#: The longest wait between two attempts of a background flush that keeps failing.
FLUSH_RETRY_MAX_S: Final = 60.0
logger = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    batch_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    object_key   TEXT UNIQUE,
    events       INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'committed')),
    created_ms   INTEGER NOT NULL,
    committed_ms INTEGER
);
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    user_id     TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    ts_ms       INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    line        TEXT NOT NULL,
    batch_id    INTEGER REFERENCES batches (batch_id)
);
CREATE INDEX IF NOT EXISTS events_unflushed ON events (seq) WHERE batch_id IS NULL;
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, ts_ms);
CREATE INDEX IF NOT EXISTS events_by_batch ON events (batch_id);
"""


@dataclass(frozen=True)
class BufferHints:
    """When to flush, like Firehose's BufferingHints: whichever limit is reached first."""

    size_bytes: int = 5 * 1024 * 1024
    interval_s: float = 300.0


@dataclass
class FlushReport:
    """What one flush wrote."""

    objects: list[str]
    events: int
    recovered: int = 0


class EventLog:
    """The durable, append-only log behind the local sink. Safe across threads and processes."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        # FULL: a commit survives a power cut. The event_id index takes random keys: keep its
        # pages in memory across commits.
        self._connections = ThreadConnections(
            path, ("synchronous=FULL", "cache_size=-65536", "foreign_keys=ON")
        )
        # executescript commits on its own; the schema is idempotent, so it runs outside.
        self._connections.get().executescript(_SCHEMA)
        with self._connections.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('log_id', ?)",
                (str(uuid.uuid4()),),
            )
        self.log_id = uuid.UUID(self._db().execute("SELECT value FROM meta").fetchone()[0])

    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    def now_ms(self) -> int:
        """The log's clock, in epoch milliseconds."""
        return int(self._clock() * 1000)

    def append(self, events: Sequence[Event]) -> int:
        """Store events durably. Returns how many were new; a repeated event_id is ignored."""
        received = self.now_ms()
        rows = [
            (
                e.event_id,
                e.user_id,
                e.item_id,
                e.event_type,
                int(e.ts.timestamp() * 1000),
                received,
                e.to_json_line(),
            )
            for e in events
        ]
        with self._connections.transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO events "
                "(event_id, user_id, item_id, event_type, ts_ms, received_ms, line) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return db.total_changes - before

    def pending(self) -> tuple[int, int, int | None]:
        """(events, bytes, oldest received_ms) waiting to be flushed."""
        row = (
            self._db()
            .execute(
                "SELECT count(*), coalesce(sum(length(line) + 1), 0), min(received_ms) "
                "FROM events WHERE batch_id IS NULL"
            )
            .fetchone()
        )
        return int(row[0]), int(row[1]), row[2]

    def claim(self, *, stream: str, max_bytes: int) -> tuple[int, str] | None:
        """Assign the oldest unflushed events (up to `max_bytes`) to a new pending batch.

        Returns (batch_id, object_key), or None when nothing is waiting.
        """
        with self._connections.transaction() as db:
            rows = db.execute(
                "SELECT seq, length(line) + 1, received_ms FROM events "
                "WHERE batch_id IS NULL ORDER BY seq"
            )
            seqs: list[int] = []
            size = 0
            first_received = None
            for seq, length, received_ms in rows:
                if seqs and size + length > max_bytes:
                    break
                seqs.append(seq)
                size += length
                first_received = first_received or received_ms
            if not seqs:
                return None
            now = self.now_ms()
            batch_id = db.execute(
                "INSERT INTO batches (events, state, created_ms) VALUES (?, 'pending', ?)",
                (len(seqs), now),
            ).lastrowid
            assert batch_id is not None
            # Firehose names the object by delivery time; the batch id keeps names unique
            # and the same on every retry of this batch.
            unique = str(uuid.uuid5(self.log_id, str(batch_id)))
            key = event_object_key(stream, datetime.fromtimestamp(now / 1000, UTC), unique)
            db.execute("UPDATE batches SET object_key = ? WHERE batch_id = ?", (key, batch_id))
            db.executemany(
                "UPDATE events SET batch_id = ? WHERE seq = ?", [(batch_id, s) for s in seqs]
            )
            return batch_id, key

    def batch_lines(self, batch_id: int) -> list[str]:
        """The JSON lines of one batch, in arrival order."""
        rows = self._db().execute(
            "SELECT line FROM events WHERE batch_id = ? ORDER BY seq", (batch_id,)
        )
        return [line for (line,) in rows]

    def pending_batches(self) -> list[tuple[int, str]]:
        """Batches claimed but not yet committed (left by a crash, or in flight)."""
        rows = self._db().execute(
            "SELECT batch_id, object_key FROM batches WHERE state = 'pending' ORDER BY batch_id"
        )
        return [(int(b), str(k)) for b, k in rows]

    def commit(self, batch_id: int) -> None:
        """Mark a batch's object as written."""
        with self._connections.transaction() as db:
            db.execute(
                "UPDATE batches SET state = 'committed', committed_ms = ? WHERE batch_id = ?",
                (self.now_ms(), batch_id),
            )

    def recent(self, user_id: str, limit: int = 50) -> list[RecentEvent]:
        """A user's newest events, newest first, flushed or not."""
        rows = self._db().execute(
            "SELECT item_id, event_type, ts_ms FROM events WHERE user_id = ? "
            "ORDER BY ts_ms DESC, seq DESC LIMIT ?",
            (user_id, limit),
        )
        return [RecentEvent(item, kind, int(ts)) for item, kind, ts in rows]

    def prune(self, keep_days: float) -> int:
        """Forget flushed events received more than `keep_days` ago. Returns how many."""
        cutoff = self.now_ms() - int(keep_days * 86_400_000)
        with self._connections.transaction() as db:
            cursor = db.execute(
                "DELETE FROM events WHERE received_ms < ? AND batch_id IN "
                "(SELECT batch_id FROM batches WHERE state = 'committed')",
                (cutoff,),
            )
            return cursor.rowcount

    def close(self) -> None:
        """Close this thread's connection."""
        self._connections.close()


class LocalSink:
    """The default sink: events go to the `EventLog`, and from there to the raw zone.

    With `background=True` a thread flushes whenever the buffer hints say so, as a running
    server needs; otherwise `put` flushes inline when a hint is reached.
    """

    def __init__(
        self,
        log: EventLog,
        lake: Lake,
        *,
        hints: BufferHints | None = None,
        stream: str = LOCAL_STREAM,
        history_days: float = 30.0,
        background: bool = False,
    ) -> None:
        self.log = log
        self.lake = lake
        self.hints = hints or BufferHints()
        self.stream = stream
        self.history_days = history_days
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.recover()
        if background:
            self._thread = threading.Thread(target=self._run, name="recs-flusher", daemon=True)
            self._thread.start()

    def put(self, events: Sequence[Event]) -> int:
        """Append events to the log; when this returns they are durable (acknowledged).

        Returns how many were new: an event whose id the log holds already is not stored
        again.
        """
        if not events:
            return 0
        new = self.log.append(events)
        if self._thread is None:
            self.flush(force=False)
        return new

    def _due(self) -> bool:
        count, size, oldest = self.log.pending()
        if count == 0:
            return False
        waited_s = (self.log.now_ms() - (oldest or 0)) / 1000
        return size >= self.hints.size_bytes or waited_s >= self.hints.interval_s

    def recover(self) -> int:
        """Finish batches a crash left pending; returns how many events they held."""
        with self._flush_lock:
            return self._finish_pending()

    def _finish_pending(self) -> int:
        # Rewriting a pending batch to its recorded key replaces, never adds, an object.
        return sum(self._write(batch_id, key) for batch_id, key in self.log.pending_batches())

    def _write(self, batch_id: int, key: str) -> int:
        lines = self.log.batch_lines(batch_id)
        self.lake.write_bytes(key, gzip_bytes(join_lines(lines)))
        self.log.commit(batch_id)
        return len(lines)

    def flush(self, force: bool = True) -> FlushReport:
        """Write waiting events to the raw zone: all of them if `force`, else only when due."""
        with self._flush_lock:
            report = FlushReport(objects=[], events=0, recovered=self._finish_pending())
            while force or self._due():
                claimed = self.log.claim(stream=self.stream, max_bytes=self.hints.size_bytes)
                if claimed is None:
                    break
                batch_id, key = claimed
                report.events += self._write(batch_id, key)
                report.objects.append(key)
            if report.objects:
                self.log.prune(self.history_days)
            return report

    def _run(self) -> None:
        period = max(0.05, min(1.0, self.hints.interval_s / 10))
        wait, failures = period, 0
        try:
            while not self._stop.wait(wait):
                try:
                    self.flush(force=False)
                except (OSError, sqlite3.Error, IngestionError, BotoCoreError, ClientError) as exc:
                    # The events stay in the log and the batch stays pending; a later round
                    # retries it, so a lake outage delays delivery but loses nothing. The
                    # rounds back off, so a full disk is not filled faster by the log.
                    failures += 1
                    wait = min(FLUSH_RETRY_MAX_S, period * 2**failures)
                    self._failed(exc, failures, wait)
                    continue
                if failures:
                    logger.warning(
                        "flush to %s works again after %d failed attempts",
                        self.lake.uri,
                        failures,
                    )
                wait, failures = period, 0
        finally:
            self.log.close()

    def _failed(self, exc: Exception, failures: int, wait: float) -> None:
        """Log a failed flush: the first with its traceback, later ones in one line."""
        if failures == 1:
            logger.exception(
                "flush to %s failed; the events stay in the event log; next attempt in %.1f s",
                self.lake.uri,
                wait,
            )
            return
        logger.error(
            "flush to %s still failing after %d attempts (%s: %s); next attempt in %.1f s",
            self.lake.uri,
            failures,
            type(exc).__name__,
            exc,
            wait,
        )

    def close(self) -> None:
        """Stop the flusher thread. Events not yet due stay in the log for the next flush."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.log.close()
