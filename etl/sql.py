"""DuckDB over the curated lake: views `interactions`, `items` and `users`, local or on S3.

On disk DuckDB reads the Parquet files itself. On S3 the views read pyarrow datasets through
pyarrow's S3 file system, with the credentials boto3 resolves (profile, role, environment,
`AWS_ENDPOINT_URL`), so no DuckDB extension has to be downloaded. The same views back the
Personalize export, and `docs/analysts.md`'s queries run against them in the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from common.lake import Lake, LocalLake, S3Lake
from etl.catalog import curated_key
from etl.errors import CuratedZoneEmpty, CuratedZoneUnreadable
from etl.schema import INTERACTIONS_TABLE, ITEMS_TABLE, PARTITION, USERS_TABLE

if TYPE_CHECKING:
    import boto3

VIEWS = ("interactions", "items", "users")


def sql_string(text: str) -> str:
    """A SQL string literal for DuckDB, quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


def _local_views(con: duckdb.DuckDBPyConnection, lake: LocalLake) -> None:
    root = Path(lake.uri)
    files = sorted(root.glob(f"{INTERACTIONS_TABLE.prefix}/{PARTITION}=*/*.parquet"))
    if not files:
        raise CuratedZoneEmpty(
            f"no curated interactions under {root / INTERACTIONS_TABLE.prefix}; run `recs etl`"
        )
    pattern = root / INTERACTIONS_TABLE.prefix / f"{PARTITION}=*" / "*.parquet"
    source = (
        f"read_parquet({sql_string(str(pattern))}, hive_partitioning = true, "
        f"union_by_name = true, hive_types = {{'{PARTITION}': DATE}})"
    )
    # Every column of the table, in its order: one that no file has yet (added since they
    # were written) reads as null.
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    columns = ", ".join(
        c.name if c.name in present else f"NULL::{_duck_type(c.athena)} AS {c.name}"
        for c in INTERACTIONS_TABLE.columns
    )
    con.execute(
        f"CREATE OR REPLACE VIEW interactions AS SELECT {columns}, {PARTITION} FROM {source}"
    )
    for table in (ITEMS_TABLE, USERS_TABLE):
        path = root / curated_key(table)
        if path.exists():
            source = f"read_parquet({sql_string(str(path))})"
        else:
            columns = ", ".join(f"NULL::{_duck_type(c.athena)} AS {c.name}" for c in table.columns)
            source = f"(SELECT {columns} WHERE false)"
        con.execute(f"CREATE OR REPLACE VIEW {table.name} AS SELECT * FROM {source}")


def _duck_type(athena: str) -> str:
    return {"string": "VARCHAR", "timestamp": "TIMESTAMPTZ", "int": "INTEGER"}.get(
        athena, athena.upper()
    )


def s3_filesystem(session: boto3.Session | None = None) -> Any:
    """A pyarrow S3 file system with the credentials and endpoint boto3 would use."""
    import os

    import boto3
    from pyarrow import fs

    session = session or boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise CuratedZoneEmpty("no AWS credentials found for reading the S3 lake")
    frozen = credentials.get_frozen_credentials()
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict[str, Any] = {
        "access_key": frozen.access_key,
        "secret_key": frozen.secret_key,
        "session_token": frozen.token,
        "region": session.region_name or "us-east-1",
    }
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        options |= {"endpoint_override": host, "scheme": scheme}
    return fs.S3FileSystem(**options)


def _s3_views(con: duckdb.DuckDBPyConnection, lake: S3Lake, session: Any) -> None:
    import pyarrow as pa
    import pyarrow.dataset as ds

    filesystem = s3_filesystem(session)
    base = f"{lake.bucket}/{lake.prefix}".rstrip("/")
    table_dir = f"{base}/{INTERACTIONS_TABLE.prefix}"
    files = [
        f"{base}/{key}"
        for key in lake.list(f"{INTERACTIONS_TABLE.prefix}/")
        if key.endswith(".parquet")
    ]
    if not files:
        raise CuratedZoneEmpty(
            f"no curated interactions under {lake.url(INTERACTIONS_TABLE.prefix)}; run `recs etl`"
        )
    partitioning = ds.partitioning(pa.schema([(PARTITION, pa.date32())]), flavor="hive")
    # The table's whole schema: a file written before a column was added reads it as null.
    schema = INTERACTIONS_TABLE.arrow_schema.append(pa.field(PARTITION, pa.date32()))
    dataset = ds.dataset(
        files,
        schema=schema,
        filesystem=filesystem,
        format="parquet",
        partitioning=partitioning,
        partition_base_dir=table_dir,
    )
    con.register("interactions", dataset)
    for table in (ITEMS_TABLE, USERS_TABLE):
        key = curated_key(table)
        if lake.exists(key):
            con.register(table.name, ds.dataset(f"{base}/{key}", filesystem=filesystem))


@contextmanager
def reading_curated(lake: Lake) -> Iterator[None]:
    """DuckDB's and Arrow's errors while reading the curated zone, as `CuratedZoneUnreadable`."""
    try:
        yield
    except (duckdb.Error, pa.ArrowException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CuratedZoneUnreadable(
            f"cannot read the curated zone of {lake.uri}: {first}. A file under curated/ is "
            "damaged or was not written by `recs etl`; restore it from a backup or from the "
            "bucket's object versions"
        ) from None


def connect(lake: Lake, *, session: boto3.Session | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the curated views over this lake."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # dates and weeks are UTC, as the partitions are
    with reading_curated(lake):
        if isinstance(lake, LocalLake):
            _local_views(con, lake)
        elif isinstance(lake, S3Lake):
            _s3_views(con, lake, session)
        else:
            raise TypeError(f"no DuckDB views for a {type(lake).__name__}")
    return con
