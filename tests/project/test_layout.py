"""Tests find their code: tests/<package>/test_<module>[_<aspect>].py for a module of that
package, tests/docs/test_<guide>.py for a guide in docs/, and tests/project/ for the
repository's own files (CI, dependencies, this layout)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def _covers(package: Path, name: str) -> bool:
    """Whether `name` is a module or folder of `package` (or a module of a subpackage, as
    `ui_tour` is ui/tour.py), or starts with one's name and an underscore."""
    modules = {
        "_".join(p.relative_to(package).with_suffix("").parts)
        for p in package.rglob("*.py")
        if p.name != "__init__.py"
    } | {p.name for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"}
    modules |= {m.strip("_") for m in modules}  # __main__ as main
    return any(name == m or name.startswith(f"{m}_") for m in modules)


def test_every_test_file_is_named_after_what_it_tests() -> None:
    strays = []
    for path in sorted(TESTS.rglob("test_*.py")):
        folder, name = path.parent.name, path.stem.removeprefix("test_")
        if path.parent.parent != TESTS:
            strays.append(f"{path.relative_to(ROOT)}: tests/ is one level deep")
        elif folder == "project":
            continue
        elif folder == "docs":
            if not (ROOT / "docs" / f"{name.replace('_', '-')}.md").is_file():
                strays.append(f"{path.relative_to(ROOT)}: no docs/{name.replace('_', '-')}.md")
        elif not (ROOT / folder).is_dir() or not _covers(ROOT / folder, name):
            strays.append(f"{path.relative_to(ROOT)}: no module {folder}/{name}.py")
    assert not strays, "\n".join(strays)
