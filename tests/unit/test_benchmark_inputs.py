"""The quality benchmark reads any Personalize interactions CSV, not only ours."""

from __future__ import annotations

from pathlib import Path

from benchmarks.quality import csv_log


def test_a_personalize_csv_with_foreign_event_types(tmp_path: Path) -> None:
    path = tmp_path / "interactions.csv"
    path.write_text(
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n"
        "7,100,1700000000,click\n"
        "7,101,1700000100,purchase\n"
        "8,100,1700000200,watch\n"
    )
    log = csv_log(path)
    assert list(log.user_ids) == ["7", "8"]
    assert list(log.item_ids) == ["100", "101"]
    assert log.kind.tolist() == [0, 2, 0]  # unknown types count as views
    assert log.ts_ms.tolist() == [1700000000000, 1700000100000, 1700000200000]


def test_a_csv_without_event_types(tmp_path: Path) -> None:
    path = tmp_path / "interactions.csv"
    path.write_text("user_id,item_id,timestamp\nA,X,1\nB,X,2\n")
    log = csv_log(path)
    assert log.kind.tolist() == [0, 0]


def test_one_section_of_the_report_is_replaced_and_the_others_kept() -> None:
    from benchmarks.__main__ import _replace_section

    report = "# Benchmarks\n\nintro\n\n## A\n\na rows\n\n## B\n\nold b\n\n## C\n\nc rows\n"
    replaced = "\n".join(_replace_section(report, "B", ["## B", "", "new b"]))
    assert replaced.index("## A") < replaced.index("## B") < replaced.index("## C")  # in place
    assert "old b" not in replaced
    assert "new b" in replaced
    assert "a rows" in replaced
    assert "c rows" in replaced
    added = "\n".join(_replace_section(report, "D", ["## D", "", "d rows"]))
    assert added.count("## ") == 4
    assert added.index("## C") < added.index("## D")  # a new section goes last
