"""What every stage's command line shares: messages, exit codes, progress bars and settings flags.

Each command is a thin shell: it reads its settings once, calls one function and prints what
happened. A failure the user can fix (a bad setting, a missing file, bad data) is one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final, ParamSpec, TypeVar

import click
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from common.errors import RecsError, SettingsError
from common.settings import RecsSettings, flag, variable

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound=RecsSettings)
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
#: Where `with_settings` leaves the settings given as flags, for a command that passes them on.
FLAGS_KEY: Final = "recs.flags"


def say(line: str) -> None:
    """A progress line on stderr, printed as it is (no markup): `common.progress.Progress`."""
    console.print(line, highlight=False, markup=False)


#: The release in which the old spellings of commands and flags go.
DEPRECATED_UNTIL: Final = "0.2"


def deprecated(old: str, new: str) -> None:
    """Say on stderr that `old` still works but goes, and what to use instead."""
    console.print(
        f"Deprecated: {old} goes in {DEPRECATED_UNTIL}; use {new} (it does the same).",
        highlight=False,
        markup=False,
    )


class CommandFailed(click.ClickException):
    """A command could not do its job; exit status 2, as for a usage error."""

    exit_code = 2


def _os_message(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _aws_message(exc: BotoCoreError | ClientError) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return (
            f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}. "
            "Check the AWS credentials, region and the resource names in the settings"
        )
    return f"AWS could not be reached: {exc}. Check the AWS credentials, region and endpoint"


def fails_cleanly(command: Callable[P, R]) -> Callable[P, R]:
    """Turn our errors, missing files and AWS refusals into one line and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (RecsError, ValueError) as exc:
            raise CommandFailed(str(exc)) from exc
        except OSError as exc:
            raise CommandFailed(_os_message(exc)) from exc
        except (BotoCoreError, ClientError) as exc:
            raise CommandFailed(_aws_message(exc)) from exc

    return wrapper


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields a function that advances it."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _dest(name: str) -> str:
    return f"setting_{name}"


def _default(value: Any) -> str:
    if isinstance(value, tuple | frozenset | list):
        return ",".join(map(str, value)) or "none"
    return "unset" if value is None else str(value)


def with_settings(
    model: type[S],
    *,
    only: Collection[str] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a command a flag per setting of `model`, and call it with `settings=` the model.

    `only` limits the flags to some settings (the others still come from the environment and
    the settings file); `fixed` sets values the command decides itself. A bad value is one
    line naming the flag, variable or file key, and exit status 2.
    """
    fixed = dict(fixed or {})
    names = [
        name for name in model.model_fields if (only is None or name in only) and name not in fixed
    ]

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            given = {name: kwargs.pop(_dest(name)) for name in names}
            context = click.get_current_context(silent=True)
            if context is not None:
                context.meta[FLAGS_KEY] = {k: v for k, v in given.items() if v is not None}
            try:
                settings = model.from_env(**given, **fixed)
            except SettingsError as exc:
                raise CommandFailed(str(exc)) from exc
            return command(*args, settings=settings, **kwargs)

        decorated: Callable[..., R] = wrapper
        for name in reversed(names):
            field = model.model_fields[name]
            text = (field.description or "").rstrip(".")
            decorated = click.option(
                flag(name),
                _dest(name),
                metavar="TEXT",
                help=f"{text}. [env {variable(name, field)}; default {_default(field.default)}]",
            )(decorated)
        return decorated

    return decorate


def clock_value(value: str | None) -> datetime | None:
    """An ISO timestamp, UTC unless it says otherwise; None stays None."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a timestamp like 2026-11-25T02:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def clock(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """A `--now` flag's value (`clock_value`); a usage error when it does not parse."""
    try:
        return clock_value(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
