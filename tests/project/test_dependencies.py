"""Every dependency installs from a package index on any machine: no local files, no URLs.

A pin such as `pkg @ file:///tmp/x/pkg.whl` installs on the machine that wrote it and
nowhere else; `make demo` and `make test` then stop at install on a fresh clone.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parents[2]
#: Indexes a dependency file may name: PyPI itself.
ALLOWED_INDEXES = ("https://pypi.org/simple", "https://pypi.python.org/simple")
_INDEX_OPTION = re.compile(r"^(--index-url|-i|--extra-index-url|--find-links|-f)[ =]+(\S+)")


def dependency_files(root: Path) -> list[Path]:
    """The files pip reads our dependencies from."""
    names = ["pyproject.toml", "constraints*.txt", "requirements*.txt", "**/requirements*.txt"]
    found = {p for name in names for p in root.glob(name) if ".venv" not in p.parts}
    return sorted(found)


def _requirement_lines(path: Path) -> Iterator[tuple[int, str]]:
    if path.name == "pyproject.toml":
        project = tomllib.loads(path.read_text())
        specs = [
            *project.get("build-system", {}).get("requires", []),
            *project.get("project", {}).get("dependencies", []),
            *(
                spec
                for group in project.get("project", {}).get("optional-dependencies", {}).values()
                for spec in group
            ),
        ]
        yield from ((0, spec) for spec in specs)
        return
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            yield number, line


def local_references(path: Path) -> list[str]:
    """Each line of a dependency file that names something other than a package on an index."""
    problems = []
    for number, line in _requirement_lines(path):
        where = f"{path.name}:{number}" if number else path.name
        option = _INDEX_OPTION.match(line)
        if option:
            if not option.group(2).rstrip("/").startswith(ALLOWED_INDEXES):
                problems.append(f"{where}: {line} (an index other than PyPI)")
            continue
        if line.startswith(("-e", "--editable", "-r", "-c", "--")):
            problems.append(f"{where}: {line} (a pip option that points at files)")
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            problems.append(f"{where}: {line} (not a requirement: a path or URL?)")
            continue
        if requirement.url is not None:
            problems.append(f"{where}: {line} (a direct URL instead of a version from PyPI)")
    return problems


def test_the_project_has_dependency_files() -> None:
    names = {p.name for p in dependency_files(ROOT)}
    assert {"pyproject.toml", "constraints.txt"} <= names


@pytest.mark.parametrize("path", dependency_files(ROOT), ids=lambda p: p.name)
def test_no_dependency_names_a_local_file_or_url(path: Path) -> None:
    assert local_references(path) == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("pkg @ file:///tmp/x/pkg-1.0-py3-none-any.whl", "a direct URL"),
        ("pkg @ https://example.com/pkg-1.0.tar.gz", "a direct URL"),
        ("./wheels/pkg-1.0-py3-none-any.whl", "not a requirement"),
        ("/opt/wheels/pkg-1.0-py3-none-any.whl", "not a requirement"),
        ("-e ../other-project", "a pip option"),
        ("--find-links /opt/wheels", "an index other than PyPI"),
        ("--extra-index-url file:///opt/pypi/simple", "an index other than PyPI"),
    ],
)
def test_the_check_catches_local_references(tmp_path: Path, line: str, reason: str) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"numpy==2.4.6\n{line}\nscipy==1.17.1\n")
    [problem] = local_references(constraints)
    assert problem.startswith("constraints.txt:2: ")
    assert reason in problem


def test_the_check_reads_pyproject_groups(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["numpy==2.4.6"]\n'
        '[project.optional-dependencies]\ndev = ["pkg @ file:///tmp/pkg.whl"]\n'
    )
    assert local_references(pyproject) == [
        "pyproject.toml: pkg @ file:///tmp/pkg.whl (a direct URL instead of a version from PyPI)"
    ]
