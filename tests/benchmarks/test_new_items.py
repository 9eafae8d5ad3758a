"""The new-items benchmark's shops: a generated catalog listed as a shop would have it at the
cut, and the shared sets' columns named as a user names them to `recs import`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from benchmarks.__main__ import _ratio
from benchmarks.datasets import COLUMNS, DataSet


def test_a_generated_catalog_lists_only_what_exists_at_the_cut(tmp_path: Path) -> None:
    cut = datetime(2026, 10, 1, tzinfo=UTC)
    catalog = pa.table(
        {
            "ITEM_ID": ["0", "1", "2"],
            "TITLE": ["a", "b", "c"],
            "CREATION_TIMESTAMP": pa.array(
                [int(cut.timestamp()) - 86_400, int(cut.timestamp()), int(cut.timestamp()) + 1],
                pa.int64(),
            ),
        }
    )
    data = DataSet("shop", pa.table({"x": [1]}), cut, None, "", catalog=catalog)
    path = data.items_file(tmp_path)
    assert path is not None
    assert pacsv.read_csv(path)["ITEM_ID"].to_pylist() == [0, 1]  # item 2 comes later


def test_the_shared_sets_name_their_columns() -> None:
    retail = DataSet("r", pa.table({"x": [1]}), datetime.now(UTC), None, "",
                     COLUMNS["online-retail"]).import_options()  # fmt: skip
    assert (retail.title_column, retail.price_column) == ("DESCRIPTION", "MEDIAN_UNIT_PRICE")
    assert COLUMNS["movielens-100k"][1] == "GENRES"


def test_a_peer_that_scored_nothing_has_no_ratio() -> None:
    assert _ratio(2.0, 4.0) == "0.50"
    assert _ratio(0.06, 0.0) == "none (the peer's figure is 0)"
