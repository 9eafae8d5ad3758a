"""A producer for the crash test: puts events forever, printing each id once it is acknowledged.

Run as `python -m tests.ingestion.crash_writer LOG LAKE PREFIX`. The parent kills it with
SIGKILL at a random moment and checks that every printed id reached the raw zone once.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from common.contract import parse_event
from common.lake import LocalLake
from ingestion.sinks import BufferHints, EventLog, LocalSink


def main() -> None:
    log, lake, prefix = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    # A tiny size hint, so that flushes (and kills during them) happen all the time.
    sink = LocalSink(
        EventLog(log), LocalLake(lake), hints=BufferHints(size_bytes=4_000, interval_s=0.05)
    )
    ts = datetime.now(UTC).isoformat()
    batch = 0
    while True:
        events = [
            parse_event(
                {
                    "userId": f"U{j}",
                    "itemId": f"I{batch}",
                    "event_type": "view",
                    "eventId": f"{prefix}-{batch}-{j}",
                    "ts": ts,
                }
            )
            for j in range(5)
        ]
        sink.put(events)
        sys.stdout.write("".join(f"{e.event_id}\n" for e in events))
        sys.stdout.flush()
        batch += 1


if __name__ == "__main__":
    main()
