"""The ETL's bookmark: what it has processed and which curated files are live, in one object.

A run works like this, and a crash at any point leaves the lake as one of the states below:

1. Finish the previous run's publish, if it was cut short (roll forward), and delete the
   staging folders of runs that never committed.
2. Write every new file under `_state/etl/staging/<run>/`, named as its final key.
3. Commit: write `_state/etl/bookmark.json` in one PUT or rename. It lists the raw objects
   processed so far, the live curated files, and the files this run still has to publish.
   Before this write the run has changed nothing anyone reads; after it, the run is done.
4. Publish: move each staged file to its final key (a rename on disk; copy and delete on S3).
   Readers who glob `curated/` see each file appear whole, never one twice.

This is Glue's job bookmark with a commit point of its own. Only one run works at a time: it
holds the lake's `etl` lock (`Lake.lock`: an OS file lock on disk, a conditional PUT on S3),
and a second run fails at once with `LakeLocked`. The bookmark's sequence number is checked
at the commit as well, so a run that somehow worked beside another (a lock broken by hand)
fails with `StateConflict` rather than overwrite it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from common.lake import Lake, damaged
from common.layout import ETL_STATE
from etl.errors import EtlError, StateConflict

BOOKMARK: Final = f"{ETL_STATE}/bookmark.json"
STAGING: Final = f"{ETL_STATE}/staging"
RUNS: Final = f"{ETL_STATE}/runs"
FORMAT: Final = 1


@dataclass
class Bookmark:
    """The committed state of the curated zone."""

    seq: int = 0
    run_id: str | None = None
    committed_at: str | None = None
    #: Raw event objects already read. Pruned as the raw zone expires them.
    processed: set[str] = field(default_factory=set)
    #: Live interaction files by event date, each with its row count.
    interactions: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The newest catalog dump merged into curated items and users.
    catalog_dump: str | None = None
    #: (staged key, final key) pairs of the last run, moved after the commit.
    publish: list[tuple[str, str]] = field(default_factory=list)
    #: Event dates whose files changed in the last run, for the Glue partitions.
    changed_dates: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        """The bookmark document."""
        body = {
            "format": FORMAT,
            "seq": self.seq,
            "run_id": self.run_id,
            "committed_at": self.committed_at,
            "catalog_dump": self.catalog_dump,
            "changed_dates": self.changed_dates,
            "publish": [list(pair) for pair in self.publish],
            "interactions": self.interactions,
            "processed": sorted(self.processed),
        }
        return json.dumps(body, indent=1, sort_keys=False).encode()

    @classmethod
    def from_json(cls, body: bytes) -> Bookmark:
        """Read a bookmark document; refuse one from a newer version of recs."""
        doc: dict[str, Any] = json.loads(body)
        if doc.get("format") != FORMAT:
            raise EtlError(
                f"{BOOKMARK} has format {doc.get('format')!r}; this recs reads format {FORMAT}. "
                "Upgrade recs, or restore the bookmark from the lake's object versions"
            )
        return cls(
            seq=int(doc["seq"]),
            run_id=doc["run_id"],
            committed_at=doc["committed_at"],
            processed={str(k) for k in doc["processed"]},
            interactions={d: dict(files) for d, files in doc["interactions"].items()},
            catalog_dump=doc["catalog_dump"],
            publish=[(str(a), str(b)) for a, b in doc["publish"]],
            changed_dates=list(doc["changed_dates"]),
        )

    def files(self, event_date: str) -> list[str]:
        """Live interaction files of one date."""
        return sorted(self.interactions.get(event_date, {}))


def load(lake: Lake) -> Bookmark:
    """The committed bookmark, or an empty one before the first run."""
    try:
        return Bookmark.from_json(lake.read_bytes(BOOKMARK))
    except FileNotFoundError:
        return Bookmark()
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise damaged(lake, BOOKMARK, f"not an ETL bookmark ({exc!r})") from None


def commit(lake: Lake, bookmark: Bookmark, *, expected_seq: int) -> None:
    """Write the bookmark: the run's commit point. Refuse if another run committed meanwhile."""
    current = load(lake)
    if current.seq != expected_seq:
        raise StateConflict(
            f"another ETL run (bookmark seq {current.seq}, run {current.run_id}) committed "
            f"while this one worked from seq {expected_seq}; nothing was committed. Run again"
        )
    lake.write_bytes(BOOKMARK, bookmark.to_json())


def staging_prefix(run_id: str) -> str:
    """Where one run stages its files."""
    return f"{STAGING}/{run_id}/"


def roll_forward(lake: Lake, bookmark: Bookmark) -> int:
    """Finish the committed run's publish and drop uncommitted staging; files moved.

    Idempotent: a pair whose staged file is gone was moved already.
    """
    staged = set(lake.list(f"{STAGING}/"))
    moved = 0
    for source, target in bookmark.publish:
        if source in staged:
            lake.move(source, target)
            staged.discard(source)
            moved += 1
    for leftover in sorted(staged):
        lake.delete(leftover)
    return moved
