"""Which of an import's events the lake already holds, for `recs import`'s "N new, M
already in the lake".

An imported event's id is a uuid5 of its content, so an export imported twice makes the same
ids. The lookup reads the ids of the hours the import covers: imported objects in the raw
zone (curated or not yet), and the curated days, which outlive the raw zone's retention on
AWS. Ids are compared by their first 64 bits, as numbers: millions fit in tens of megabytes.
"""

from __future__ import annotations

import gzip
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from common.lake import Lake
from common.layout import RAW_EVENTS, interactions_day
from ingestion.raw import GZIP_MAGIC, HISTORY_STREAM

#: Lake listings and reads in flight while looking for ids already in the lake (S3 answers
#: each in tens of milliseconds; a year of history touches thousands of hours).
_LOOKUP_THREADS: Final = 16
_EVENT_ID: Final = re.compile(rb'"event_id":"([0-9a-f-]{36})"')
_HEX: Final = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)
#: The 16 hex digits of a UUID's first 64 bits, in its text form (`8-4-4-4-12`).
_HIGH_DIGITS: Final = np.r_[0:8, 9:13, 14:18]


def id_keys(ids: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """The first 64 bits of each UUID in text form (rows of 36 bytes), as `UUID.int >> 64`
    gives them; a row that is not a lowercase UUID gets no key."""
    digits = _HEX[ids[:, _HIGH_DIGITS]]
    good = (digits < 16).all(axis=1) & (ids[:, [8, 13, 18, 23]] == ord("-")).all(axis=1)
    weights = np.uint64(1) << (np.arange(60, -4, -4, dtype=np.uint64))
    keys: npt.NDArray[np.uint64] = (digits[good].astype(np.uint64) * weights).sum(
        axis=1, dtype=np.uint64
    )
    return keys


def _raw_ids(lake: Lake, hour_ms: int) -> list[bytes]:
    """The ids of the imported events in one hour of the raw zone."""
    when = datetime.fromtimestamp(hour_ms / 1000, UTC)
    prefix = f"{RAW_EVENTS}/{when:%Y/%m/%d/%H}/{HISTORY_STREAM}-"
    return [i for key in lake.list(prefix) for i in _EVENT_ID.findall(_unzip(lake, key))]


def _unzip(lake: Lake, key: str) -> bytes:
    body = lake.read_bytes(key)
    return gzip.decompress(body) if body[:2] == GZIP_MAGIC else body


def _curated_ids(lake: Lake, day: str) -> list[bytes]:
    """The UUID-shaped event ids of one day of curated interactions."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found = []
    for key in lake.list(f"{interactions_day(day)}/"):
        if key.endswith(".parquet"):
            ids = pq.read_table(pa.BufferReader(lake.read_bytes(key)), columns=["event_id"])[0]
            ids = ids.filter(pc.equal(pc.binary_length(ids), 36))
            found += [i.encode() for i in ids.to_pylist()]
    return found


def ids_in_lake(lake: Lake, hours: set[int]) -> npt.NDArray[np.uint64]:
    """The first 64 bits of every event id the lake holds in these hours: imported events in
    the raw zone (curated or not yet), and every event in the curated days, which outlive the
    raw zone's retention. Sorted and unique; an import's own ids are uuid5, so 64 bits tell
    them apart (two ids agree there about once in 10^19 pairs)."""
    days = sorted({f"{datetime.fromtimestamp(h / 1000, UTC):%Y-%m-%d}" for h in hours})
    with ThreadPoolExecutor(_LOOKUP_THREADS, thread_name_prefix="import-lookup") as pool:
        raw = pool.map(lambda hour: _raw_ids(lake, hour), sorted(hours))
        curated = pool.map(lambda day: _curated_ids(lake, day), days)
        ids = [i for part in (*raw, *curated) for i in part]
    if not ids:
        return np.empty(0, dtype=np.uint64)
    matrix = np.frombuffer(b"".join(ids), dtype=np.uint8).reshape(-1, 36)
    return np.unique(id_keys(matrix))
