"""`python -m benchmarks` (`benchmarks/__main__.py`): the report it writes."""

from __future__ import annotations


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
