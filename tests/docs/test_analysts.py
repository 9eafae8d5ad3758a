"""docs/analysts.md's queries run, in both spellings, and agree: the doc cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlglot

from common.lake import LocalLake
from etl.job import run_etl
from etl.sql import VIEWS, connect
from tests.etl_helpers import NOW, plant_shop

DOC = Path(__file__).parents[2] / "docs" / "analysts.md"
BLOCK = re.compile(r"```sql\n-- (duckdb|athena): ([a-z-]+)\n(.*?)```", re.DOTALL)


def _queries() -> dict[str, dict[str, str]]:
    queries: dict[str, dict[str, str]] = {}
    for engine, name, body in BLOCK.findall(DOC.read_text()):
        queries.setdefault(name, {})[engine] = body
    return queries


QUERIES = _queries()


def test_the_doc_has_the_worked_queries_in_both_spellings() -> None:
    assert set(QUERIES) >= {"daily-funnel", "top-items", "daily-active-users", "new-items-per-week"}
    assert all(set(q) == {"duckdb", "athena"} for q in QUERIES.values())


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> LocalLake:
    lake = LocalLake(tmp_path_factory.mktemp("analysts") / "lake")
    plant_shop(lake, events=5000, days=10)
    run_etl(lake, now=NOW)
    return lake


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_each_query_runs_and_athena_agrees_with_duckdb(name: str, curated: LocalLake) -> None:
    con = connect(curated)
    rows = con.sql(QUERIES[name]["duckdb"]).fetchall()
    assert rows, f"{name} returned nothing on a generated shop"
    # Athena's spelling, parsed by sqlglot's Athena dialect (a syntax check), runs on the
    # same data with the Glue database `recs` as a DuckDB schema.
    con.execute("CREATE SCHEMA recs")
    for view in VIEWS:
        con.execute(f"CREATE VIEW recs.{view} AS SELECT * FROM main.{view}")
    athena = sqlglot.transpile(QUERIES[name]["athena"], read="athena", write="duckdb")
    assert len(athena) == 1
    assert con.sql(athena[0]).fetchall() == rows
