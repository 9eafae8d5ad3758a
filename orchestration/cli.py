"""The `recs` command: one group that gathers every stage's commands.

Orchestration sits at the end of the flow, so it may import every stage; no stage imports it.
It also owns the settings file: `recs --config FILE` names it (else RECS_CONFIG, else
./recs.toml), and a key no stage reads is refused before any command runs.
"""

from __future__ import annotations

import os
from typing import Any

import click

import serving.cli
from common.cli import CommandFailed, out
from common.errors import SettingsError
from common.settings import CONFIG_VARIABLE, RecsSettings, flag, settings_file, unknown_keys
from etl.cli import COMMANDS as ETL_COMMANDS
from etl.settings import EtlSettings
from ingestion.cli import COMMANDS as INGESTION_COMMANDS
from orchestration.commands import COMMANDS as ORCHESTRATION_COMMANDS
from orchestration.settings import PipelineSettings
from serving.cli import COMMANDS as SERVING_COMMANDS
from serving.settings import ServingSettings
from training.cli import COMMANDS as TRAINING_COMMANDS
from training.settings import TrainingSettings

#: The settings models that together hold every setting, for `recs settings`.
_MODELS: tuple[type[RecsSettings], ...] = (
    ServingSettings,
    EtlSettings,
    TrainingSettings,
    PipelineSettings,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="recs")
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help=f"Settings file (TOML). [env {CONFIG_VARIABLE}; default ./recs.toml if present]",
)
def recs(config: str | None) -> None:
    """recs: product recommendations for online shops.

    Events flow in (generate, import, ingest), are curated (etl), train models (train) and
    come back out over HTTP (serve). Each setting is a flag, a RECS_* variable or a key of
    the settings file; `recs settings` shows them all.

    \b
    Example: recs generate --events 200000 && recs etl && recs train && recs publish
    """
    if config is not None:
        # The entry point owns its environment: every stage, and `recs serve`'s workers,
        # read the file it names from there.
        os.environ[CONFIG_VARIABLE] = config
    try:
        found = settings_file()
    except SettingsError as exc:
        raise CommandFailed(str(exc)) from exc
    if found is not None:
        unknown = unknown_keys(found)
        if unknown:
            raise CommandFailed(
                f"{found.path}: {', '.join(unknown)} is not a setting; `recs settings` lists "
                "them all"
            )


@click.command("settings")
def settings_command() -> None:
    """Show every setting: its value, where it came from, its variable and its flag.

    \b
    Example: recs --config prod.toml settings
    """
    seen: set[str] = set()
    rows = []
    for model in _MODELS:
        try:
            settings = model.from_env()
        except SettingsError as exc:
            raise CommandFailed(str(exc)) from exc
        for name, field in model.model_fields.items():
            if name in seen:
                continue
            seen.add(name)
            value = getattr(settings, name)
            if name == "api_keys":
                shown = f"{len(value)} key(s)" if value else "none"
            elif isinstance(value, tuple | frozenset):
                shown = ",".join(value) or "none"
            elif name == "filters":
                shown = ", ".join(f"{n}: {f.expression}" for n, f in value.items()) or "none"
            else:
                shown = "unset" if value is None else str(value)
            rows.append((name, shown, settings.source_of(name), flag(name), field.description))
    width = max(len(r[0]) for r in rows)
    for name, shown, source, option, _ in rows:
        out.print(f"{name:<{width}}  {shown}  ({source}; {option})", highlight=False)


# `recs serve` shows the storefront and the ops page, which read every stage's zone.
serving.cli.UI_FACTORY = "orchestration.ui.server:create_app"

for _command in (
    *INGESTION_COMMANDS,
    *ETL_COMMANDS,
    *TRAINING_COMMANDS,
    *SERVING_COMMANDS,
    *ORCHESTRATION_COMMANDS,
    settings_command,
):
    recs.add_command(_command)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the `recs` console script."""
    return recs.main(args=argv, prog_name="recs")
