"""The curated zone's tables: every column, its Arrow type, its Athena type and its meaning.

This is the one place the curated schema is written down. The ETL writes Parquet with these
Arrow schemas, registers these Athena types in the Glue Data Catalog, and the readers
(training, `recs sql`, the Personalize export) import the names from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pyarrow as pa

from common.layout import CURATED, INTERACTIONS_PARTITION, interactions_day

INTERACTIONS: Final = "interactions"
ITEMS: Final = "items"
USERS: Final = "users"
#: The interactions table's Hive partition column, a UTC date: `event_date=2026-11-01/`.
PARTITION: Final = INTERACTIONS_PARTITION
#: Parquet settings for every curated file. zstd level 1 writes as fast as snappy here and
#: makes files about 40% smaller (measured on generated events); Athena and DuckDB read it.
PARQUET_OPTIONS: Final = {"compression": "zstd", "compression_level": 1}


@dataclass(frozen=True)
class Column:
    """One column of a curated table."""

    name: str
    arrow: pa.DataType
    athena: str
    doc: str
    nullable: bool = False
    #: Worth a Parquet dictionary: few distinct values. Random ids (event_id) are not.
    dictionary: bool = False


@dataclass(frozen=True)
class Table:
    """One curated table: its folder under the lake and its columns."""

    name: str
    doc: str
    columns: tuple[Column, ...]
    partition: Column | None = None

    @property
    def prefix(self) -> str:
        """The table's folder under the lake root."""
        return f"{CURATED}/{self.name}"

    @property
    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of the table's Parquet files (the partition column is in the path)."""
        return pa.schema(
            [pa.field(c.name, c.arrow, nullable=c.nullable) for c in self.columns],
            metadata={"recs.table": self.name},
        )

    @property
    def names(self) -> list[str]:
        """Column names, in file order."""
        return [c.name for c in self.columns]

    @property
    def dictionary_columns(self) -> list[str]:
        """Columns to dictionary-encode in Parquet."""
        return [c.name for c in self.columns if c.dictionary]


_TS = pa.timestamp("ms", tz="UTC")

INTERACTIONS_TABLE: Final = Table(
    name=INTERACTIONS,
    doc="One row per shopper interaction (view, add_to_cart, purchase), deduplicated by "
    "event_id and partitioned by the UTC date of ts.",
    columns=(
        Column("event_id", pa.string(), "string", "Unique id of the event."),
        Column("user_id", pa.string(), "string", "Pseudonymous shopper id.", dictionary=True),
        Column("item_id", pa.string(), "string", "Product id.", dictionary=True),
        Column(
            "event_type",
            pa.string(),
            "string",
            "view, add_to_cart or purchase.",
            dictionary=True,
        ),
        Column("ts", _TS, "timestamp", "When the interaction happened, UTC, milliseconds."),
        Column(
            "session_id", pa.string(), "string", "Shopper session.", nullable=True, dictionary=True
        ),
        Column("price", pa.float64(), "double", "Unit price, shop currency.", nullable=True),
        Column("quantity", pa.int32(), "int", "Units, for carts and purchases.", nullable=True),
        Column(
            "properties",
            pa.string(),
            "string",
            "Free-form attributes as a JSON object (json_extract_scalar in Athena).",
            nullable=True,
        ),
        # Added after the first release: files written before them lack these columns, and
        # the views read them as null (etl/sql.py).
        Column(
            "recommendation_id",
            pa.string(),
            "string",
            "recommendationId of the answer the interaction came from (a click on a "
            "recommendation); null otherwise.",
            nullable=True,
        ),
        Column(
            "shop_event_type",
            pa.string(),
            "string",
            "The shop's own name for the interaction when it was mapped onto one of ours "
            "(fav or wishlist imported as add_to_cart, pv as view); null otherwise.",
            nullable=True,
            dictionary=True,
        ),
    ),
    partition=Column(PARTITION, pa.date32(), "date", "UTC date of ts."),
)

ITEMS_TABLE: Final = Table(
    name=ITEMS,
    doc="The catalog: every item any dump has listed, with the attributes of the latest dump "
    "that listed it. `active` is true for the items of the latest dump.",
    columns=(
        Column("item_id", pa.string(), "string", "Product id."),
        Column("title", pa.string(), "string", "Product title.", nullable=True),
        Column("category", pa.string(), "string", "Category.", nullable=True, dictionary=True),
        Column("brand", pa.string(), "string", "Brand.", nullable=True, dictionary=True),
        Column("price", pa.float64(), "double", "List price, shop currency.", nullable=True),
        Column(
            "created_at", _TS, "timestamp", "When the shop created the item, UTC.", nullable=True
        ),
        Column(
            "attributes",
            pa.string(),
            "string",
            "Every other column of the shop's catalog, as a JSON object "
            "(json_extract_scalar in Athena).",
        ),
        Column("first_seen_at", _TS, "timestamp", "Time of the first dump that listed it."),
        Column("last_seen_at", _TS, "timestamp", "Time of the latest dump that listed it."),
        Column("active", pa.bool_(), "boolean", "Listed by the latest catalog dump."),
    ),
)

USERS_TABLE: Final = Table(
    name=USERS,
    doc="Shoppers known to the catalog dumps, with their latest attributes.",
    columns=(
        Column("user_id", pa.string(), "string", "Pseudonymous shopper id."),
        Column("attributes", pa.string(), "string", "Attributes as a JSON object."),
        Column("first_seen_at", _TS, "timestamp", "Time of the first dump that listed them."),
        Column("last_seen_at", _TS, "timestamp", "Time of the latest dump that listed them."),
        Column("active", pa.bool_(), "boolean", "Listed by the latest catalog dump."),
    ),
)

TABLES: Final = (INTERACTIONS_TABLE, ITEMS_TABLE, USERS_TABLE)


def partition_prefix(event_date: str) -> str:
    """The folder of one day of interactions: `curated/interactions/event_date=YYYY-MM-DD`."""
    return interactions_day(event_date)
