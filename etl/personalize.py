"""Amazon Personalize import files from the curated zone: three CSVs and their Avro schemas.

`exports/personalize/<run>/` gets `interactions/part-00000.csv` (and further parts),
`items.csv`, `users.csv` and one `*.schema.json` each, as a dataset import job reads them:
upper-case reserved column names,
TIMESTAMP and CREATION_TIMESTAMP in epoch seconds, categorical strings marked
`"categorical": true` (several values of one field are joined with `|`, Personalize's
separator). The data is checked against Personalize's documented minimums and quotas first,
so that a too-small shop fails here with a clear message rather than hours later in a job.
DuckDB does the work over the curated views, streaming, so memory stays flat.

An incremental export (the nightly one, once Personalize has imported a night) holds only
the interactions from the last imported day on (`imported_through`, which training records
once its import jobs finish), for an INCREMENTAL import job; items and users are always
whole. A shop of 50 million events a day would otherwise write and re-import all of its
history every night. The last imported day goes again, so that events which arrived late for
it are imported too: Personalize keeps one of two interactions with the same timestamp and
properties, so the rest are not doubled. Events later still are caught by the weekly
full-history run, whose FULL import replaces the dataset. `export.json` in the prefix says
which kind an export is, and lists the interactions' parts.

Interactions are streamed into parts of at most `RECS_PERSONALIZE_PART_MB` (900 MB by
default), each with the header: an INCREMENTAL import job takes at most 1 GB (Personalize's
quotas page), and a big shop's day is more. Training imports the parts one job after
another; a FULL import reads the whole `interactions/` folder in one job (100 GB). The disk
holds two parts at a time, never the whole export, and DuckDB works within
`RECS_EXPORT_MEMORY_MB` (spilling to a temporary folder), so neither grows with the shop.
Rows come in no particular order: Personalize orders them by TIMESTAMP itself.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from common.lake import Lake
from common.layout import PERSONALIZE_EXPORTS, PERSONALIZE_IMPORTED
from etl.errors import DataQualityError
from etl.sql import connect, reading_curated, sql_string

NAMESPACE: Final = "com.amazonaws.personalize.schema"
#: The folder of interaction parts in an export, and the single file of exports before it.
INTERACTIONS_FOLDER: Final = "interactions"
OLD_INTERACTIONS_FILE: Final = "interactions.csv"
#: Bytes of interactions one INCREMENTAL import job takes (quotas page: 1 GB), and our default
#: part, under it with room to spare.
INCREMENTAL_JOB_BYTES: Final = 10**9
PART_BYTES: Final = 900 * 10**6
#: The largest part asked for: a last part under an import job's 1,000 rows joins the one
#: before it, and 10 MB leaves room for it.
MAX_PART_BYTES: Final = 990 * 10**6

# Personalize's documented minimums and quotas (docs: "Amazon Personalize endpoints and
# quotas", and "Choosing a use case" for the minimums).
MIN_INTERACTIONS: Final = 1000
MIN_USERS_WITH_TWO: Final = 25
MAX_ID_CHARS: Final = 256
MAX_CATEGORICAL_CHARS: Final = 1000
MAX_USER_FIELDS: Final = 25
MAX_ITEM_FIELDS: Final = 100
#: Items a custom recipe other than User-Personalization-v2 considers; beyond it, a warning.
MAX_ITEMS_CLASSIC: Final = 750_000

_FIELD_NAME: Final = re.compile(r"[^A-Z0-9_]")


def _avro(name: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "record",
        "name": name,
        "namespace": NAMESPACE,
        "fields": fields,
        "version": "1.0",
    }


INTERACTIONS_SCHEMA: Final = _avro(
    "Interactions",
    [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "EVENT_TYPE", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
    ],
)


def field_name(attribute: str) -> str:
    """A shop attribute's name as a Personalize field: upper case, letters, digits and `_`."""
    name = _FIELD_NAME.sub("_", attribute.upper())
    return name if name[:1].isalpha() else f"F_{name}"


@dataclass
class ExportReport:
    """What an export wrote, and the checks it passed."""

    prefix: str
    #: FULL (all of history) or INCREMENTAL (from the last imported day on).
    mode: str = "FULL"
    since: date | None = None
    #: The last day of interactions in the file, for the import's bookmark.
    through: date | None = None
    interactions: int = 0
    #: The interactions' parts, relative to the prefix, and their bytes in all.
    interaction_parts: list[str] = field(default_factory=list)
    interaction_bytes: int = 0
    users_with_two: int = 0
    items: int = 0
    users: int = 0
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    rows = con.execute(sql).fetchall()
    return rows[0][0] if rows else None


def _attribute_keys(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        f"SELECT DISTINCT unnest(json_keys(attributes)) AS k FROM {table} ORDER BY k"
    ).fetchall()
    return [str(r[0]) for r in rows]


def check_minimums(con: duckdb.DuckDBPyConnection, report: ExportReport) -> None:
    """Refuse data Personalize would refuse, naming the rule and the numbers."""
    report.interactions = int(_one(con, "SELECT count(*) FROM interactions"))
    report.users_with_two = int(
        _one(
            con,
            "SELECT count(*) FROM (SELECT user_id FROM interactions GROUP BY user_id "
            "HAVING count(*) >= 2)",
        )
    )
    problems = []
    if report.interactions < MIN_INTERACTIONS:
        problems.append(
            f"Personalize needs at least {MIN_INTERACTIONS} interactions; the curated zone "
            f"has {report.interactions}"
        )
    if report.users_with_two < MIN_USERS_WITH_TWO:
        problems.append(
            f"Personalize needs at least {MIN_USERS_WITH_TWO} users with 2 or more "
            f"interactions each; the curated zone has {report.users_with_two}"
        )
    longest = _one(
        con,
        "SELECT max(greatest(length(user_id), length(item_id))) FROM interactions",
    )
    if longest is not None and longest > MAX_ID_CHARS:
        problems.append(f"an id is {longest} characters; Personalize allows {MAX_ID_CHARS}")
    if problems:
        raise DataQualityError(
            "; ".join(problems) + ". These are Personalize's own limits: collect more events, "
            "run `recs etl`, then export again"
        )


def _categorical_check(
    con: duckdb.DuckDBPyConnection, name: str, query: str, schema: dict[str, Any]
) -> None:
    for spec in schema["fields"]:
        if not spec.get("categorical"):
            continue
        column = spec["name"]
        rows = con.execute(
            f"SELECT {column}, length({column}) FROM ({query}) "
            f"WHERE length({column}) > {MAX_CATEGORICAL_CHARS} LIMIT 1"
        ).fetchall()
        if rows:
            row = rows[0]
            raise DataQualityError(
                f"{name}.csv: {column} has a value of {row[1]} characters; Personalize allows "
                f"{MAX_CATEGORICAL_CHARS} for categorical data. Shorten it in the catalog"
            )


def imported_through(lake: Lake) -> date | None:
    """The last day of interactions Personalize imported, or None before the first import."""
    if not lake.exists(PERSONALIZE_IMPORTED):
        return None
    return date.fromisoformat(json.loads(lake.read_bytes(PERSONALIZE_IMPORTED))["through"])


def mark_imported(lake: Lake, through: date) -> None:
    """Record that Personalize has imported every interaction up to `through`."""
    lake.write_bytes(PERSONALIZE_IMPORTED, json.dumps({"through": through.isoformat()}).encode())


def export_personalize(
    lake: Lake,
    *,
    run: str | None = None,
    incremental: bool = False,
    part_bytes: int = PART_BYTES,
    memory_mb: int = 1024,
) -> ExportReport:
    """Write Personalize's import CSVs and schemas for the curated zone; return what was written.

    `incremental` exports only the interactions from the last imported day on, when there
    was an import and that leaves at least Personalize's minimum of rows for an import job;
    otherwise the export is whole. Interactions are cut into parts of at most `part_bytes`;
    DuckDB works within `memory_mb` and spills the rest to disk."""
    if part_bytes > MAX_PART_BYTES:
        raise DataQualityError(
            f"a part of {part_bytes:,} bytes leaves no room under the {INCREMENTAL_JOB_BYTES:,} "
            "bytes one INCREMENTAL import job takes (a short last part joins the one before "
            "it); set RECS_PERSONALIZE_PART_MB to 990 or less"
        )
    run = run or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    con = connect(lake)
    con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
    # Personalize reads rows in any order: DuckDB need not hold any back to keep one.
    con.execute("SET preserve_insertion_order = false")
    with reading_curated(lake):
        report = ExportReport(prefix=f"{PERSONALIZE_EXPORTS}/{run}")
        since = imported_through(lake) if incremental else None  # again: its late events
        new = 0
        if since is not None:
            new = int(_one(con, f"SELECT count(*) FROM interactions WHERE event_date >= '{since}'"))
            if new >= MIN_INTERACTIONS:
                report.mode, report.since = "INCREMENTAL", since
            else:
                report.warnings.append(
                    f"only {new} interactions since {since}, fewer than an import job's "
                    f"minimum of {MIN_INTERACTIONS}: exporting all of history instead"
                )
        return _export(lake, con, report, incremental_rows=new, part_bytes=part_bytes)


def _csv_rows(batch: pa.RecordBatch) -> bytes:
    """A batch as CSV lines: bare values, as DuckDB writes them, unless one holds a comma,
    quote or line end; then the batch's strings are quoted."""
    sink = io.BytesIO()
    try:
        pacsv.write_csv(batch, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    except pa.ArrowInvalid:
        sink = io.BytesIO()
        options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
        pacsv.write_csv(batch, sink, options)
    return sink.getvalue()


def write_parts(
    batches: Iterable[pa.RecordBatch],
    columns: list[str],
    folder: Path,
    *,
    max_bytes: int,
    min_rows: int,
) -> Iterator[tuple[Path, int, int]]:
    """CSV parts `part-00000.csv`, ... in `folder`, each with the header, filled in order up
    to `max_bytes`. A part closes only once it holds `min_rows` (an import job's minimum,
    which wins over a part size too small to be real), and a last part under `min_rows`
    joins the one before it. Yields each part's path, rows and bytes once the part after it
    has begun, so the caller can move it away: the disk holds two parts at most, never the
    whole export."""
    folder.mkdir(parents=True, exist_ok=True)
    header = (",".join(columns) + "\n").encode()
    held: tuple[Path, int, int] | None = None
    path, rows, size, count = folder / "part-00000.csv", 0, len(header), 1
    out = path.open("wb")
    out.write(header)
    try:
        for batch in batches:
            body = _csv_rows(batch)
            if rows >= min_rows and size + len(body) > max_bytes:
                out.close()
                if held is not None:
                    yield held
                held = (path, rows, size)
                path, rows, size = folder / f"part-{count:05d}.csv", 0, len(header)
                count += 1
                out = path.open("wb")
                out.write(header)
            out.write(body)
            rows, size = rows + batch.num_rows, size + len(body)
    finally:
        out.close()
    if held is not None and rows < min_rows:
        before, before_rows, before_size = held
        with before.open("ab") as joined, path.open("rb") as tail:
            tail.seek(len(header))
            joined.write(tail.read())
        path.unlink()
        held = None
        path, rows, size = before, before_rows + rows, before_size + size - len(header)
    if held is not None:
        yield held
    yield path, rows, size


def interaction_parts(lake: Lake, prefix: str) -> list[str]:
    """The keys of an export's interaction parts (an export from before parts, its one file)."""
    key = f"{prefix}/export.json"
    if lake.exists(key):
        parts = json.loads(lake.read_bytes(key)).get("interaction_parts")
        if parts:
            return [f"{prefix}/{part}" for part in parts]
    return [f"{prefix}/{OLD_INTERACTIONS_FILE}"]


def _export(
    lake: Lake,
    con: duckdb.DuckDBPyConnection,
    report: ExportReport,
    *,
    incremental_rows: int,
    part_bytes: int,
) -> ExportReport:
    """Check what Personalize requires, then write each dataset and its schema, and last
    `export.json`, which says what the export holds."""
    check_minimums(con, report)
    datasets = _datasets(con, report)
    for name, (query, schema) in datasets.items():
        _categorical_check(con, name, query, schema)
    _write_datasets(lake, con, report, datasets, part_bytes)
    if report.since is not None:
        report.interactions = incremental_rows  # the file's, not the zone's (check_minimums)
    described = {
        "mode": report.mode,
        "since": report.since.isoformat() if report.since else None,
        "through": report.through.isoformat() if report.through else None,
        "interactions": report.interactions,
        "interaction_parts": report.interaction_parts,
        "interaction_bytes": report.interaction_bytes,
    }
    lake.write_bytes(f"{report.prefix}/export.json", json.dumps(described, indent=2).encode())
    report.files.append(f"{report.prefix}/export.json")
    return report


def _attribute_columns(keys: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """The SELECT columns and schema fields of the shop's own attributes."""
    select = "".join(
        f", json_extract_string(attributes, {sql_string('$.' + json.dumps(k))}) AS {field_name(k)}"
        for k in keys
    )
    fields = [
        {"name": field_name(k), "type": ["null", "string"], "categorical": True} for k in keys
    ]
    return select, fields


def _datasets(
    con: duckdb.DuckDBPyConnection, report: ExportReport
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each dataset's query and Avro schema, within Personalize's limits on fields."""
    item_keys = _attribute_keys(con, "items")
    user_keys = _attribute_keys(con, "users")
    if len(item_keys) + 4 > MAX_ITEM_FIELDS or len(user_keys) > MAX_USER_FIELDS:
        raise DataQualityError(
            f"items have {len(item_keys) + 4} metadata fields (limit {MAX_ITEM_FIELDS}) and "
            f"users {len(user_keys)} (limit {MAX_USER_FIELDS}); drop attributes"
        )
    report.items = int(_one(con, "SELECT count(*) FROM items"))
    report.users = int(_one(con, "SELECT count(*) FROM users"))
    if report.items > MAX_ITEMS_CLASSIC:
        report.warnings.append(
            f"{report.items} items: recipes other than User-Personalization-v2 consider "
            f"only {MAX_ITEMS_CLASSIC}"
        )
    item_select, item_fields = _attribute_columns(item_keys)
    user_select, user_fields = _attribute_columns(user_keys)
    window = f"WHERE event_date >= '{report.since}' " if report.since else ""
    through = _one(con, f"SELECT max(event_date) FROM interactions {window}")
    report.through = through if isinstance(through, date) else None
    datasets = {
        "interactions": (
            "SELECT user_id AS USER_ID, item_id AS ITEM_ID, event_type AS EVENT_TYPE, "
            f"(epoch_ms(ts) // 1000) AS TIMESTAMP FROM interactions {window}",
            INTERACTIONS_SCHEMA,
        ),
        "items": (
            # An item the shop gave no creation time was created, as far as we know, when
            # a catalog first listed it; Personalize's CREATION_TIMESTAMP cannot be null.
            "SELECT item_id AS ITEM_ID, category AS CATEGORY, brand AS BRAND, price AS PRICE, "
            "(epoch_ms(coalesce(created_at, first_seen_at)) // 1000) AS CREATION_TIMESTAMP, "
            f"CASE WHEN active THEN 'true' ELSE 'false' END AS ACTIVE{item_select} "
            "FROM items ORDER BY item_id",
            _avro(
                "Items",
                [
                    {"name": "ITEM_ID", "type": "string"},
                    {"name": "CATEGORY", "type": ["null", "string"], "categorical": True},
                    {"name": "BRAND", "type": ["null", "string"], "categorical": True},
                    {"name": "PRICE", "type": ["null", "float"]},
                    {"name": "CREATION_TIMESTAMP", "type": "long"},
                    {"name": "ACTIVE", "type": "string", "categorical": True},
                    *item_fields,
                ],
            ),
        ),
    }
    if user_keys:
        # Personalize's users dataset needs at least one metadata field besides USER_ID.
        datasets["users"] = (
            f"SELECT user_id AS USER_ID{user_select} FROM users ORDER BY user_id",
            _avro("Users", [{"name": "USER_ID", "type": "string"}, *user_fields]),
        )
    else:
        report.warnings.append("users have no attributes; users.csv is left out")
    return datasets


def _write_datasets(
    lake: Lake,
    con: duckdb.DuckDBPyConnection,
    report: ExportReport,
    datasets: dict[str, tuple[str, dict[str, Any]]],
    part_bytes: int,
) -> None:
    """Each dataset's CSV (the interactions in parts) and schema, into the export."""
    with tempfile.TemporaryDirectory(prefix="recs-export-") as tmp:
        # An in-memory DuckDB spills to `.tmp` in the working folder, which a Lambda's is not.
        con.execute(f"SET temp_directory = {sql_string(str(Path(tmp) / 'spill'))}")
        for name, (query, schema) in datasets.items():
            if name == "interactions":
                # Streamed into parts: a full export of a big shop's weeks is tens of GB,
                # more than a Lambda's 10 GB of /tmp, and never needs to be whole.
                reader = con.sql(query).to_arrow_reader(min(100_000, max(100, part_bytes // 2000)))
                columns = [f["name"] for f in schema["fields"]]
                folder = Path(tmp) / INTERACTIONS_FOLDER
                for part, _rows, size in write_parts(
                    reader, columns, folder, max_bytes=part_bytes, min_rows=MIN_INTERACTIONS
                ):
                    relative = f"{INTERACTIONS_FOLDER}/{part.name}"
                    lake.upload(f"{report.prefix}/{relative}", part)
                    report.interaction_parts.append(relative)
                    report.interaction_bytes += size
                    report.files.append(f"{report.prefix}/{relative}")
                    part.unlink()
            else:
                path = Path(tmp) / f"{name}.csv"
                con.execute(f"COPY ({query}) TO {sql_string(str(path))} (HEADER, DELIMITER ',')")
                lake.upload(f"{report.prefix}/{name}.csv", path)
                report.files.append(f"{report.prefix}/{name}.csv")
            lake.write_bytes(
                f"{report.prefix}/{name}.schema.json", json.dumps(schema, indent=2).encode()
            )
            report.files.append(f"{report.prefix}/{name}.schema.json")
