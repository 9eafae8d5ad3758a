"""How a long stage reports what it is doing: a callable taking one line, quiet by default.

Standard library only, so every stage (the Lambda-packaged ones too) can take one; the
command line passes `common.cli.say`, which prints each line on stderr.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def quiet(_line: str) -> None:
    """Report nothing: the default for code called from code."""
