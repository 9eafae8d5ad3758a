"""Curating catalog dumps into `curated/items/` and `curated/users/`.

Each dump is a full snapshot. Merging one keeps every item ever listed: attributes from the
latest dump that listed it, `first_seen_at` from the first, and `active` for the items of the
latest dump, so that old interactions still join to their item after it leaves the shop.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel

from common.contract import epoch_ms, loads_untrusted, parse_item, parse_user
from common.errors import InvalidRecord, Problem
from common.lake import Lake, damaged, read_json
from common.layout import RAW_CATALOG
from etl.events import Rejected
from etl.schema import ITEMS_TABLE, PARQUET_OPTIONS, USERS_TABLE, Table
from ingestion.raw import CATALOG_MANIFEST, read_lines


def complete_dumps(lake: Lake, after: str | None) -> list[str]:
    """Prefixes of whole catalog dumps (their manifest written) newer than `after`, oldest first."""
    dumps = []
    for key in lake.list(f"{RAW_CATALOG}/"):
        prefix, _, name = key.rpartition("/")
        if name == CATALOG_MANIFEST and (after is None or prefix > after):
            dumps.append(prefix)
    return sorted(dumps)


@dataclass
class CatalogResult:
    """Curated catalog tables a merge changed (None if unchanged), and what was refused."""

    items: pa.Table | None
    users: pa.Table | None
    rejected: list[Rejected] = field(default_factory=list)
    read: int = 0
    repeated: int = 0


def _dump_time(lake: Lake, prefix: str) -> tuple[datetime, dict[str, Any]]:
    key = f"{prefix}/{CATALOG_MANIFEST}"
    manifest: dict[str, Any] = read_json(lake, key)
    try:
        dumped = datetime.fromisoformat(manifest["dumped_at"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError) as exc:
        raise damaged(lake, key, f"no valid dumped_at ({exc!r})") from None
    return dumped, manifest


def _records(
    lake: Lake,
    key: str,
    parse: Callable[[dict[str, Any]], BaseModel],
    result: CatalogResult,
) -> Iterator[BaseModel]:
    for number, line in enumerate(read_lines(lake.read_bytes(key)), start=1):
        result.read += 1
        try:
            record = loads_untrusted(line, "Line")
            if not isinstance(record, dict):
                raise InvalidRecord([Problem("body", "A catalog record must be a JSON object")])
            yield parse(record)
        except InvalidRecord as exc:
            result.rejected.append(Rejected(key, number, tuple(exc.problems), line))


def _attributes(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _snapshot(table: Table, rows: dict[str, dict[str, Any]], dumped: datetime) -> pa.Table:
    seen = epoch_ms(dumped)
    columns: dict[str, list[Any]] = {name: [] for name in table.names}
    for key in sorted(rows):
        row = {**rows[key], "first_seen_at": seen, "last_seen_at": seen, "active": True}
        for name in table.names:
            columns[name].append(row[name])
    return pa.table(columns, schema=table.arrow_schema)


def _merge(table: Table, key: str, previous: pa.Table | None, latest: pa.Table) -> pa.Table:
    """Latest snapshot rows, keeping first sightings; earlier rows not in it become inactive."""
    if previous is None:
        return latest
    first = previous.select([key, "first_seen_at"]).rename_columns([key, "_first"])
    joined = latest.join(first, key, join_type="left outer")
    joined = joined.set_column(
        joined.schema.get_field_index("first_seen_at"),
        "first_seen_at",
        pc.coalesce(joined["_first"], joined["first_seen_at"]),
    )
    gone = previous.filter(pc.invert(pc.is_in(previous[key], value_set=latest[key])))
    gone = gone.set_column(
        gone.schema.get_field_index("active"), "active", pa.array([False] * gone.num_rows)
    )
    merged = pa.concat_tables(
        [joined.select(table.names).cast(table.arrow_schema), gone.cast(table.arrow_schema)]
    )
    return merged.take(pc.sort_indices(merged[key]))


def read_curated(lake: Lake, table: Table) -> pa.Table | None:
    """The live curated items or users file, if the ETL has written one."""
    try:
        body = lake.read_bytes(curated_key(table))
    except FileNotFoundError:
        return None
    return pq.read_table(pa.BufferReader(body)).cast(table.arrow_schema)


def curated_key(table: Table) -> str:
    """The one file of the items or users table."""
    return f"{table.prefix}/{table.name}.parquet"


def parquet_bytes(table: pa.Table, dictionary: list[str]) -> bytes:
    """A curated table as Parquet bytes, with the house settings."""
    sink = io.BytesIO()
    pq.write_table(table, sink, use_dictionary=dictionary, **PARQUET_OPTIONS)
    return sink.getvalue()


def curate_catalog(lake: Lake, dumps: list[str]) -> CatalogResult:
    """Merge catalog dumps, oldest first, into the live curated items and users."""
    items = read_curated(lake, ITEMS_TABLE)
    users = read_curated(lake, USERS_TABLE)
    result = CatalogResult(items=None, users=None)
    changed = {"items": False, "users": False}
    for prefix in dumps:
        dumped, manifest = _dump_time(lake, prefix)
        files = manifest.get("files", {})
        # An empty file means "not part of this dump", not "the shop has none": an items-only
        # dump must not retire every user.
        if files.get("items.jsonl", 0) > 0:
            rows: dict[str, dict[str, Any]] = {}
            for item in _records(lake, f"{prefix}/items.jsonl", parse_item, result):
                record = item.model_dump()
                if record["created_at"] is not None:
                    record["created_at"] = epoch_ms(record["created_at"])
                record["attributes"] = _attributes(record["attributes"])
                result.repeated += record["item_id"] in rows
                rows[record["item_id"]] = record  # a later line of the same dump wins
            items = _merge(ITEMS_TABLE, "item_id", items, _snapshot(ITEMS_TABLE, rows, dumped))
            changed["items"] = True
        if files.get("users.jsonl", 0) > 0:
            rows = {}
            for user in _records(lake, f"{prefix}/users.jsonl", parse_user, result):
                record = user.model_dump()
                record["attributes"] = _attributes(record["attributes"])
                result.repeated += record["user_id"] in rows
                rows[record["user_id"]] = record
            users = _merge(USERS_TABLE, "user_id", users, _snapshot(USERS_TABLE, rows, dumped))
            changed["users"] = True
    # Only tables a dump changed are rewritten.
    result.items = items if changed["items"] else None
    result.users = users if changed["users"] else None
    return result
