"""The `recs` command: one group that gathers every stage's commands.

Orchestration sits at the end of the flow, so it may import every stage; no stage imports it.
"""

from __future__ import annotations

from typing import Any

import click

from etl.cli import COMMANDS as ETL_COMMANDS
from ingestion.cli import COMMANDS as INGESTION_COMMANDS
from serving.cli import COMMANDS as SERVING_COMMANDS
from training.cli import COMMANDS as TRAINING_COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="recs")
def recs() -> None:
    """recs: product recommendations for online shops.

    Events flow in (generate, import, ingest), are curated (etl), train models (train) and
    come back out over HTTP (serve). Settings come from RECS_* variables; see README.md.

    \b
    Example: recs generate --events 200000 && recs flush
    """


for _command in (*INGESTION_COMMANDS, *ETL_COMMANDS, *TRAINING_COMMANDS, *SERVING_COMMANDS):
    recs.add_command(_command)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the `recs` console script."""
    return recs.main(args=argv, prog_name="recs")
