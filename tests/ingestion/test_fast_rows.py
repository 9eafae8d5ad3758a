"""The vectorized import reader against the row-at-a-time one: the same events, byte for
byte and with the same ids, the same refusals with the same messages, the same report."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.lake import LocalLake
from ingestion import fast_rows, importer
from ingestion.importer import ImportOptions, ImportReport, import_files
from ingestion.raw import read_lines

NOW = datetime(2026, 11, 25, tzinfo=UTC)
# Values that stress each rule: blanks, spaces, quotes, commas, non-ASCII, JSON escapes,
# long ids, numbers at each unit's edge, the future, and event names of every kind.
IDS = ["U1", " U2", "U3 ", "", "  ", "Ü4", 'U"5', "U\\6", "U\t7", "x" * 256, "y" * 257, "a,b"]
TIMES = [
    "1755369000", "0", "99999999999", "100000000000", "1755369000123", "99999999999999",
    "100000000000000", "1755369000123456", "17553690001234567", " 1755369000", "1755369000.5",
    "2025-08-16T18:30:00Z", "2025-08-16T18:30:00", "-5", "4102444800", "1e9", "nan", "",
]  # fmt: skip
TYPES = [
    "view", "View", "pv", "PageView", "add-to-cart", "AddToCart", "fav", " fav ", "wishlist",
    "buy", "purchase", "share", "", " ", "Fåv", 'c"art',
]  # fmt: skip
PRICES = ["", "19.99", "3", "0", "0.00001", "-1", "1e3", "free", "1_000", "123456789012345.5"]
QUANTITIES = ["", "1", "10000", "10001", "0", "05", " 2", "2.0", "x"]
PROPS = ["", "shoes", "a" * 1024, "a" * 1025, "ünï", 'say "hi"', "x,y"]


def _cell(value: str) -> str:
    if any(c in value for c in ',"\n') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


def _file(seed: int, rows: int) -> str:
    rng = random.Random(seed)
    header = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,SESSION_ID,PRICE,QUANTITY,COLOR\n"
    lines = [header]
    for _ in range(rows):
        kind = rng.random()
        if kind < 0.03:
            lines.append(rng.choice(["\n", ",,,,,,,\n", "  \n", "U1,I1\n", "\r\n"]))
            continue

        # Each field odd on its own, so that most odd rows have one odd value.
        def pick(usual: str, odd: list[str]) -> str:
            return rng.choice(odd) if rng.random() < 0.12 else usual

        values = [
            pick(f"U{rng.randrange(20)}", IDS),
            pick(f"I{rng.randrange(30)}", IDS),
            pick(str(1755369000 + rng.randrange(10**6)), TIMES),
            pick(rng.choice(TYPES[:11]), TYPES),
            pick(rng.choice(["", "S1"]), IDS),
            pick(rng.choice(PRICES[:3]), PRICES),
            pick(rng.choice(QUANTITIES[:3]), QUANTITIES),
            pick(rng.choice(PROPS[:2]), PROPS),
        ]
        lines.append(",".join(_cell(v) for v in values) + rng.choice(["\n", "\r\n"]))
        if rng.random() < 0.05:
            lines.append(lines[-1])  # an identical row: its own event
    return "".join(lines)


def _landed(lake: LocalLake) -> list[str]:
    keys = lake.list("raw/events/")
    return sorted(line.decode() for key in keys for line in read_lines(lake.read_bytes(key)))


def _summary(report: ImportReport) -> dict[str, Any]:
    return {
        "counts": (report.rows, report.accepted, report.rejected, report.rescaled, report.new),
        "repeats": report.repeats,
        "kinds": dict(report.kinds),
        "examples": report.examples,
        "unmapped": dict(report.unmapped),
        "mapped": dict(report.mapped),
        "objects": len(report.objects),
    }


def _both(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch, options: ImportOptions
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    path = tmp_path / "in.csv"
    path.write_bytes(text.encode())
    outcomes = []
    for name in ("fast", "rows"):
        lake = LocalLake(tmp_path / name)
        with monkeypatch.context() as patch:
            if name == "rows":

                def refuse(*_args: object, **_kwargs: object) -> None:
                    raise fast_rows.GiveUp

                patch.setattr(importer, "read_fast", refuse)
            try:
                [report] = import_files(lake, interactions=path, options=options, now=NOW)
            except importer.InvalidImportFile as exc:
                outcomes.append((str(exc), lake.top_level(), None))
                continue
        quarantined = sorted(
            json.loads(line)["line"]
            for key in lake.list("quarantine/")
            for line in read_lines(lake.read_bytes(key))
        )
        outcomes.append((_summary(report), _landed(lake), quarantined))
    return outcomes[0], outcomes[1]


@pytest.mark.parametrize("seed", range(6))
def test_the_fast_reader_agrees_with_the_row_reader(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = ImportOptions(event_types={"share": "view"}, event_type="view" if seed % 2 else None)
    fast, rows = _both(tmp_path, _file(seed, 400), monkeypatch, options)
    assert fast[0] == rows[0]
    assert fast[1] == rows[1]
    assert fast[2] == rows[2]
    assert fast[0]["counts"][1] > 100  # the bulk path did take rows


def test_blocks_are_cut_at_line_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines that straddle a block boundary, and line numbers across blocks."""
    monkeypatch.setattr(fast_rows, "BLOCK_BYTES", 97)
    fast, rows = _both(tmp_path, _file(11, 300), monkeypatch, ImportOptions())
    assert fast == rows


@pytest.mark.parametrize(
    "text",
    [
        'USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nU1,"I\n1",1755369000,view\nU2,I2,1755369000,view\n',
        "\ufeff\n\nUSER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n\nU1,I1,1755369000,view\nU2,I2,x,view",
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nU1,I1,1755369000,view\nU2,I2,17553\r69000,view\n",
    ],
    ids=["a value over two lines", "a BOM, blank lines, no final newline", "a lone CR"],
)
def test_files_the_fast_reader_gives_up_on_or_cuts_carefully(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, rows = _both(tmp_path, text, monkeypatch, ImportOptions())
    assert fast == rows
