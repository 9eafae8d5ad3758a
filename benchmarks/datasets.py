"""The shops the quality benchmark scores: the real sets of `RECS_BENCH_DATA` (UCI Online
Retail, MovieLens 100K) that are present, a generated shop, and any Personalize interactions
CSV, each with the cut between what recs trains on and what it is scored on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from benchmarks import END
from common.contract import EVENT_TYPES
from ingestion.generator import ShopSpec, generate_shop
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
        found.append(DataSet(name, _csv_table(path), cut, items if items.exists() else None, note))
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
        )
    )
    return found, missing
