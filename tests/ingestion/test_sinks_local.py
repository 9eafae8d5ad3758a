"""The local sink: buffering like Firehose, recent history, and recovery of interrupted flushes."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.contract import Event, parse_event
from common.lake import LocalLake
from ingestion.raw import read_lines
from ingestion.sinks import BufferHints, EventLog, LocalSink


class Clock:
    def __init__(self) -> None:
        self.now = 1_755_370_000.0

    def __call__(self) -> float:
        return self.now


def _events(n: int, user: str = "U1", start: int = 0) -> list[Event]:
    ts = datetime(2025, 8, 16, 18, 0, tzinfo=UTC)
    return [
        parse_event(
            {
                "userId": user,
                "itemId": f"I{i}",
                "event_type": "view",
                "eventId": f"{user}-{i}",
                "ts": (ts + timedelta(seconds=i)).isoformat(),
            }
        )
        for i in range(start, start + n)
    ]


def _raw_ids(lake: LocalLake) -> list[str]:
    return [
        json.loads(line)["event_id"]
        for key in lake.list("raw/events/")
        for line in read_lines(lake.read_bytes(key))
    ]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _sink(tmp_path: Path, clock: Clock, hints: BufferHints) -> tuple[LocalSink, LocalLake]:
    lake = LocalLake(tmp_path / "lake")
    return LocalSink(EventLog(tmp_path / "log.sqlite3", clock=clock), lake, hints=hints), lake


def test_nothing_is_written_until_a_buffer_hint_is_reached(tmp_path: Path, clock: Clock) -> None:
    sink, lake = _sink(tmp_path, clock, BufferHints(size_bytes=10_000, interval_s=60))
    sink.put(_events(5))
    assert _raw_ids(lake) == []
    clock.now += 61
    sink.put(_events(1, start=5))
    assert _raw_ids(lake) == [f"U1-{i}" for i in range(6)]


def test_size_hint_cuts_objects(tmp_path: Path, clock: Clock) -> None:
    sink, lake = _sink(tmp_path, clock, BufferHints(size_bytes=1_000, interval_s=3600))
    sink.put(_events(30))
    keys = list(lake.list("raw/events/"))
    assert len(keys) >= 3
    assert all(len(lake.read_bytes(k)) < 1_000 for k in keys)
    sink.flush(force=True)
    assert sorted(_raw_ids(lake)) == sorted(f"U1-{i}" for i in range(30))


def test_a_repeated_event_id_is_stored_once(tmp_path: Path, clock: Clock) -> None:
    sink, lake = _sink(tmp_path, clock, BufferHints())
    assert sink.log.append(_events(3)) == 3
    assert sink.log.append(_events(3)) == 0
    sink.flush()
    assert len(_raw_ids(lake)) == 3


def test_recent_history_is_newest_first_and_survives_flush(tmp_path: Path, clock: Clock) -> None:
    sink, _ = _sink(tmp_path, clock, BufferHints())
    sink.put(_events(4, user="U1") + _events(2, user="U2"))
    sink.flush()
    recent = sink.log.recent("U1", limit=3)
    assert [r.item_id for r in recent] == ["I3", "I2", "I1"]
    assert sink.log.recent("nobody") == []


def test_prune_forgets_only_flushed_events_past_the_window(tmp_path: Path, clock: Clock) -> None:
    sink, _ = _sink(tmp_path, clock, BufferHints())
    sink.put(_events(3))
    sink.flush()
    clock.now += 40 * 86_400
    sink.put(_events(2, start=3))  # not flushed yet
    assert sink.log.prune(keep_days=30) == 3
    assert [r.item_id for r in sink.log.recent("U1")] == ["I4", "I3"]


class Crash(BaseException):
    """Stands in for the process dying at a chosen point."""


def test_crash_after_the_object_is_written_does_not_duplicate(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, lake = _sink(tmp_path, clock, BufferHints())
    sink.put(_events(10))

    def die(self: EventLog, batch_id: int) -> None:
        raise Crash("killed between writing the object and marking it")

    monkeypatch.setattr(EventLog, "commit", die)
    with pytest.raises(Crash):
        sink.flush()
    keys_after_crash = list(lake.list("raw/events/"))
    monkeypatch.undo()
    restarted, _ = _sink(tmp_path, clock, BufferHints())
    restarted.flush()
    assert list(lake.list("raw/events/")) == keys_after_crash
    assert sorted(_raw_ids(lake)) == sorted(f"U1-{i}" for i in range(10))


def test_crash_before_the_object_is_written_writes_it_on_restart(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, lake = _sink(tmp_path, clock, BufferHints())
    sink.put(_events(10))

    def die(self: LocalLake, key: str, body: bytes) -> None:
        raise Crash("killed before the object was written")

    monkeypatch.setattr(LocalLake, "write_bytes", die)
    with pytest.raises(Crash):
        sink.flush()
    monkeypatch.undo()
    assert _raw_ids(lake) == []
    restarted, _ = _sink(tmp_path, clock, BufferHints())  # recovery runs on open
    assert sorted(_raw_ids(lake)) == sorted(f"U1-{i}" for i in range(10))
    restarted.put(_events(5, start=10))
    restarted.flush()
    assert sorted(_raw_ids(lake)) == sorted(f"U1-{i}" for i in range(15))


def test_background_flusher_delivers_without_being_asked(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    sink = LocalSink(
        EventLog(tmp_path / "log.sqlite3"), lake, hints=BufferHints(interval_s=0.1), background=True
    )
    try:
        sink.put(_events(3))
        for _ in range(100):
            if len(_raw_ids(lake)) == 3:
                break
            time.sleep(0.05)
        assert len(_raw_ids(lake)) == 3
    finally:
        sink.close()


class FullDisk(LocalLake):
    """A lake whose writes fail as a full disk's do, until `full` is cleared."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.full = True
        self.attempts = 0

    def write_bytes(self, key: str, body: bytes) -> None:
        self.attempts += 1
        if self.full:
            raise OSError(28, "No space left on device")
        super().write_bytes(key, body)


def test_background_flusher_backs_off_on_a_lake_it_cannot_write_and_logs_through_the_logger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: every second, a traceback printed to stderr, on a disk that was already full."""
    lake = FullDisk(tmp_path / "lake")
    caplog.set_level(logging.WARNING, logger="ingestion.sinks.local")
    sink = LocalSink(
        EventLog(tmp_path / "log.sqlite3"), lake, hints=BufferHints(interval_s=0.1), background=True
    )
    try:
        sink.put(_events(3))
        time.sleep(1.6)  # rounds every 0.05 s would be about 30 attempts
        assert 2 <= lake.attempts <= 6  # after 0.1, 0.2, 0.4 and 0.8 s
        failures = [r for r in caplog.records if "flush to" in r.getMessage()]
        assert len(failures) == lake.attempts
        assert failures[0].exc_info is not None  # the first one with its traceback
        assert all(r.exc_info is None for r in failures[1:])  # then one line each
        assert "still failing after 2 attempts (OSError:" in failures[1].getMessage()
        lake.full = False
        for _ in range(80):
            if len(_raw_ids(lake)) == 3:
                break
            time.sleep(0.05)
        assert len(_raw_ids(lake)) == 3  # nothing acknowledged was lost
        assert "works again" in caplog.records[-1].getMessage()
    finally:
        sink.close()
