"""The shops the quality benchmark scores: the real sets of `RECS_BENCH_DATA` (UCI Online
Retail, MovieLens 100K) that are present, a generated shop, and any Personalize interactions
CSV, each with the cut between what recs trains on and what it is scored on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from benchmarks import END
from common.contract import EVENT_TYPES
from ingestion.generator import Shop, ShopSpec, generate_shop, item_records
from ingestion.import_options import ImportOptions
from training.data import Interactions

if TYPE_CHECKING:
    pass


def shop_log(
    n_events: int, seed: int = 21, users: int | None = None, items: int | None = None
) -> Interactions:
    """A generated shop's events, straight from the generator's columns."""
    shop = generate_shop(
        ShopSpec(
            users=users or max(1000, n_events // 50),
            items=items or max(500, n_events // 200),
            categories=30,
            days=90,
            events=n_events,
            seed=seed,
            end=END,
        )
    )
    return Interactions.from_arrow(_shop_table(shop))


def _shop_table(shop: object) -> pa.Table:
    return pa.table(
        {
            "user_id": pc.cast(pa.array(shop.user), pa.string()),  # type: ignore[attr-defined]
            "item_id": pc.cast(pa.array(shop.item), pa.string()),  # type: ignore[attr-defined]
            "event_type": pa.array(np.array(EVENT_TYPES)[shop.kind]),  # type: ignore[attr-defined]
            "ts_ms": pa.array(shop.ts_ms),  # type: ignore[attr-defined]
        }
    )


def _csv_table(path: Path) -> pa.Table:
    """A Personalize interactions CSV as user_id, item_id, event_type, ts_ms columns.

    Event types other than ours count as views.
    """
    table = pacsv.read_csv(path)
    names = {n.upper(): n for n in table.column_names}
    kinds = (
        table[names["EVENT_TYPE"]]
        if "EVENT_TYPE" in names
        else pa.nulls(table.num_rows, pa.string())
    )
    known = pc.is_in(kinds, value_set=pa.array(EVENT_TYPES))
    return pa.table(
        {
            "user_id": pc.cast(table[names["USER_ID"]], pa.string()),
            "item_id": pc.cast(table[names["ITEM_ID"]], pa.string()),
            "event_type": pc.if_else(pc.fill_null(known, False), kinds, "view"),
            "ts_ms": pc.multiply(pc.cast(table[names["TIMESTAMP"]], pa.int64()), 1000),
        }
    )


def csv_log(path: Path) -> Interactions:
    """A Personalize interactions CSV: USER_ID, ITEM_ID, TIMESTAMP (s), EVENT_TYPE optional."""
    return Interactions.from_arrow(_csv_table(path))


@dataclass(frozen=True)
class DataSet:
    """One shop's events, where to cut them, and where they come from."""

    name: str
    table: pa.Table
    cut: datetime
    items_csv: Path | None
    note: str
    #: The items file's title, category and price columns, where they have other names.
    item_columns: tuple[str | None, str | None, str | None] = (None, None, None)
    #: A generated shop's catalog (Personalize's items columns), for `items_file`.
    catalog: pa.Table | None = None

    def items_file(self, folder: Path) -> Path | None:
        """The items file to import at the cut: the real set's, or the generated catalog's
        items created by the cut (a shop's catalog lists nothing it has not created yet)."""
        if self.catalog is None:
            return self.items_csv
        created = self.catalog["CREATION_TIMESTAMP"]
        listed = self.catalog.filter(pc.less_equal(created, int(self.cut.timestamp())))
        path = folder / "items.csv"
        pacsv.write_csv(listed, path)
        return path

    def import_options(self) -> ImportOptions:
        """How `recs import` reads this set's items file."""
        title, category, price = self.item_columns
        return ImportOptions(title_column=title, category_column=category, price_column=price)


def shop_catalog(shop: Shop) -> pa.Table:
    """A generated shop's catalog as Personalize's items columns, ids as the events have
    them (the item's code)."""
    records = list(item_records(shop))
    created = [datetime.fromisoformat(r["created_at"]).timestamp() for r in records]
    return pa.table(
        {
            "ITEM_ID": [str(i) for i in range(len(records))],
            "TITLE": [r["title"] for r in records],
            "CATEGORY": [r["category"] for r in records],
            "BRAND": [r["brand"] for r in records],
            "PRICE": [r["price"] for r in records],
            "CREATION_TIMESTAMP": pa.array([int(c) for c in created], pa.int64()),
        }
    )


#: The shared sets' items columns, as a user names them to `recs import` (--title-column,
#: --category-column, --price-column): Online Retail's description and median price, and
#: MovieLens's genres.
COLUMNS: Final = {
    "online-retail": ("DESCRIPTION", None, "MEDIAN_UNIT_PRICE"),
    "movielens-100k": (None, "GENRES", None),
}


def data_sets(quality_events: int, data: Path) -> tuple[list[DataSet], list[str]]:
    """The real sets in `data` that are present, and the generated shop; notes on those
    missing."""
    found, missing = [], []
    real = (
        (
            "online retail",
            "online-retail",
            datetime(2011, 7, 1, tzinfo=UTC),
            "UCI Online Retail purchases; trained before 2011-07-01, scored July to September",
        ),
        (
            "MovieLens 100K",
            "movielens-100k",
            datetime(1998, 1, 1, tzinfo=UTC),
            "ratings of 4 and 5 as views; trained before 1998-01-01, scored to 1998-04",
        ),
    )
    for name, folder, cut, note in real:
        path = data / folder / "interactions.csv.gz"
        if not path.exists():
            missing.append(
                f"{name}: skipped, {path} is absent (see the module docstring of "
                "benchmarks/quality.py for where to get it)."
            )
            continue
        items = data / folder / "items.csv.gz"
        found.append(
            DataSet(
                name,
                _csv_table(path),
                cut,
                items if items.exists() else None,
                note,
                COLUMNS.get(folder, (None, None, None)),
            )
        )
    shop = generate_shop(
        ShopSpec(
            users=max(1000, quality_events // 50),
            items=max(500, quality_events // 200),
            categories=30,
            days=90,
            events=quality_events,
            seed=21,
            end=END,
        )
    )
    found.append(
        DataSet(
            "generated shop",
            _shop_table(shop),
            datetime(2026, 10, 18, tzinfo=UTC),
            None,
            f"our generator, {quality_events:,} events over 90 days; scored on the last two weeks",
            catalog=shop_catalog(shop),
        )
    )
    return found, missing
