"""Settings: every RECS_* value from one place, read once per entry point.

Each entry point reads a frozen model, a subclass of `RecsSettings` (pydantic-settings).
A value comes from, first match wins:

1. a command-line flag (`--buffer-mb 8`), given to `from_env` as a keyword argument;
2. the environment (`RECS_BUFFER_MB=8`);
3. the settings file: the TOML file `RECS_CONFIG` names, else `recs.toml` in the working
   folder if there is one. Each key is a setting's name without `RECS_`, in lower case
   (`buffer_mb = 8`); one file holds the settings of every stage;
4. the default.

A bad or missing value fails with `SettingsError`, naming where it came from: the flag, the
variable, or the file and its key.
"""

from __future__ import annotations

import os
import tomllib
import warnings
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Self, get_args

from pydantic import AliasChoices, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from common.errors import SettingsError

ENV_PREFIX: Final = "RECS_"
#: The variable that names the settings file.
CONFIG_VARIABLE: Final = "RECS_CONFIG"
#: The settings file read when RECS_CONFIG is unset, if it exists.
DEFAULT_CONFIG: Final = Path("recs.toml")

#: Settings whose value is a table of the file (`[filters.NAME]`); every other is top-level.
TABLES: Final = frozenset({"filters"})

#: The environment a `from_env` call reads, for the sources it builds.
_ENVIRONMENT: ContextVar[Mapping[str, str]] = ContextVar("recs_settings_environment")
_CONFIG: ContextVar[SettingsFile | None] = ContextVar("recs_settings_file")


@dataclass(frozen=True)
class SettingsFile:
    """A parsed settings file: its path and its keys."""

    path: Path
    values: Mapping[str, Any]


def settings_file(env: Mapping[str, str] | None = None) -> SettingsFile | None:
    """The settings file `RECS_CONFIG` names, else ./recs.toml if present; None if neither."""
    env = os.environ if env is None else env
    named = env.get(CONFIG_VARIABLE)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise SettingsError(
                f"{CONFIG_VARIABLE} names {named}, which is not a file; point it at a TOML "
                "settings file such as recs.toml, or unset it"
            )
    elif DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    else:
        return None
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read the settings file {path}: {exc}") from None
    tables = [key for key, value in values.items() if isinstance(value, dict) and key not in TABLES]
    if tables:
        raise SettingsError(
            f"{path}: [{tables[0]}] is a table; write every setting at the top level, "
            'e.g. lake = "./lake"'
        )
    return SettingsFile(path, _renamed(values, str, f" in {path}"))


@dataclass(frozen=True)
class Renamed:
    """A setting's old spelling, still read for one release, with a warning."""

    #: The setting it became, by name (`history`, read from RECS_HISTORY).
    to: str
    #: The old value in the new setting's form.
    convert: Callable[[str], str] = str
    #: When the old spelling goes.
    until: str = "0.2"


#: Old spellings by name: RECS_<NAME> in the environment, <name> in the settings file.
RENAMED: Final[Mapping[str, Renamed]] = {
    # One setting for the history table on the API and the Kinesis consumer alike.
    "history_table": Renamed("history", lambda table: f"dynamodb://{table}"),
    # `recs serve --log-file`'s setting, named like its flag.
    "serve_log_file": Renamed("log_file"),
}


def _renamed(values: Mapping[str, Any], key: Callable[[str], str], where: str) -> dict[str, Any]:
    """`values` with each old spelling moved to its new one (unless that is set too), and a
    FutureWarning per old spelling found."""
    moved = dict(values)
    for old, new in RENAMED.items():
        if key(old) not in moved:
            continue
        value = moved.pop(key(old))
        warnings.warn(
            f"{key(old)}{where} is deprecated and goes in {new.until}: set {key(new.to)} "
            f"instead (to {new.convert(str(value))!r})",
            FutureWarning,
            stacklevel=4,
        )
        moved.setdefault(key(new.to), new.convert(str(value)))
    return moved


def _names(name: str, field: FieldInfo) -> tuple[str, ...]:
    """The names a field answers to, lower case: its own and its aliases."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return (name, *(str(choice).lower() for choice in alias.choices))
    return (name,)


def _variables(name: str, field: FieldInfo) -> tuple[str, ...]:
    """Every environment variable a setting is read from."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(dict.fromkeys(str(choice).upper() for choice in alias.choices))
    return (_variable_of(name),)


def variable(name: str, field: FieldInfo) -> str:
    """The environment variable of a setting, as the README names it."""
    return _variables(name, field)[-1]


def _variable_of(name: str) -> str:
    """The environment variable of a setting without aliases: RECS_<NAME>."""
    return f"{ENV_PREFIX}{name.upper()}"


def flag(name: str) -> str:
    """The command-line flag of a setting."""
    return "--" + name.replace("_", "-")


class _GivenEnvironment(EnvSettingsSource):
    """The environment `from_env` was given, instead of always `os.environ`."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            _ENVIRONMENT.get(os.environ),
            self.case_sensitive,
            self.env_ignore_empty,
            self.env_parse_none_str,
        )


class RecsSettings(BaseSettings):
    """The base of every entry point's settings: RECS_* variables, recs.toml, flags."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        frozen=True,
        extra="forbid",
        populate_by_name=True,
    )
    #: Every settings model, so that `recs` can refuse a settings file key none of them has.
    registry: ClassVar[list[type[RecsSettings]]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        RecsSettings.registry.append(cls)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags, then the environment, then the settings file; no .env or secrets files."""
        config = _CONFIG.get(None)
        from_file = {}
        if config is not None:
            for name, field in settings_cls.model_fields.items():
                for key in _names(name, field):
                    if key in config.values:
                        from_file[name] = config.values[key]
                        break
        return (
            init_settings,
            _GivenEnvironment(settings_cls),
            InitSettingsSource(settings_cls, init_kwargs=from_file),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Read the settings once; keyword arguments that are not None win (they are flags)."""
        env = _renamed(os.environ if env is None else env, _variable_of, "")
        unknown = set(overrides) - set(cls.model_fields)
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        config = settings_file(env)
        env_token = _ENVIRONMENT.set(env)
        config_token = _CONFIG.set(config)
        try:
            return cls(**given)
        except ValidationError as exc:
            raise SettingsError(_message(cls, exc, env, given, config)) from None
        finally:
            _ENVIRONMENT.reset(env_token)
            _CONFIG.reset(config_token)

    def source_of(self, name: str, env: Mapping[str, str] | None = None) -> str:
        """Where a setting's value came from: its variable, the settings file, or the default.

        A flag is not seen here: `recs settings` takes none.
        """
        env = os.environ if env is None else env
        found = _source(type(self), name, env, {}, settings_file(env))
        return found or "default"


def _source(
    cls: type[RecsSettings],
    name: str,
    env: Mapping[str, str],
    given: Mapping[str, Any],
    config: SettingsFile | None,
) -> str | None:
    """The flag, variable or file key a setting's value came from; None for its default."""
    field = cls.model_fields[name]
    if name in given:
        return flag(name)
    for key in _variables(name, field):
        if env.get(key):
            return key
    if config is not None:
        for key in _names(name, field):
            if key in config.values:
                return f"{key} in {config.path}"
    return None


def _where(
    cls: type[RecsSettings],
    name: str,
    env: Mapping[str, str],
    given: Mapping[str, Any],
    config: SettingsFile | None,
) -> str:
    """Where to say a bad or missing value came from: its source, else its variable."""
    if name not in cls.model_fields:
        return name
    return _source(cls, name, env, given, config) or variable(name, cls.model_fields[name])


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _message(
    cls: type[RecsSettings],
    exc: ValidationError,
    env: Mapping[str, str],
    given: Mapping[str, Any],
    config: SettingsFile | None,
) -> str:
    """pydantic's errors in the words of this project, each naming where the value came from."""
    messages = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        kind, got, context = error["type"], error.get("input"), error.get("ctx") or {}
        if not loc:  # a rule across settings: its message names them
            messages.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        name = str(loc[0])
        where = _where(cls, name, env, given, config)
        if len(loc) > 1:  # within a table's entry, such as [filters.NAME]'s expression
            where += f" at {'.'.join(map(str, loc[1:]))}"
        field = cls.model_fields.get(name)
        if kind == "missing":
            messages.append(f"{where} is required")
            continue
        if kind == "extra_forbidden":
            messages.append(f"{where} is not a setting of {cls.__name__}")
            continue
        if kind in ("float_parsing", "float_type", "finite_number"):
            rule = "must be a number"
        elif kind in ("int_parsing", "int_type", "int_from_float"):
            rule = "must be a whole number"
        elif kind == "greater_than_equal":
            rule = f"must be at least {_number(context.get('ge'))}"
        elif kind == "greater_than":
            rule = f"must be more than {_number(context.get('gt'))}"
        elif kind == "less_than_equal":
            rule = f"must be at most {_number(context.get('le'))}"
        elif kind == "literal_error" and field is not None:
            choices = [str(c) for c in _literal_choices(field.annotation)]
            rule = f"must be one of {', '.join(choices)}"
        elif kind == "value_error":
            rule = str(error["msg"]).removeprefix("Value error, ")
        else:
            rule = f"is invalid: {error['msg']}"
        messages.append(f"{where} {rule} (got {got!r})")
    return "; ".join(messages)


def _literal_choices(annotation: Any) -> tuple[Any, ...]:
    args = get_args(annotation)
    if not args:
        return ()
    if all(not get_args(a) for a in args):
        return args
    return tuple(c for a in args for c in _literal_choices(a))


def unknown_keys(config: SettingsFile) -> list[str]:
    """Keys of a settings file that no settings model reads (a typo, most likely)."""
    known = {
        key
        for model in RecsSettings.registry
        for name, field in model.model_fields.items()
        for key in _names(name, field)
    }
    return sorted(set(config.values) - known)


#: Where a lake is when no setting says.
DEFAULT_LAKE: Final = "./lake"


class LakeSettings(RecsSettings):
    """Where the lake is: every command reads or writes it."""

    lake: str = Field(
        DEFAULT_LAKE, min_length=1, description="Lake root: a folder or s3://bucket/prefix"
    )
