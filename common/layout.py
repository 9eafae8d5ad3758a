"""The lake's zones, each path declared once (DESIGN.md's layout table, as code).

Every key a stage reads or writes starts with one of these. `ZONES` is what makes a folder
or prefix a lake (`common.lake.check_lake`).
"""

from __future__ import annotations

from typing import Final

#: Firehose's layout: `raw/events/YYYY/MM/DD/HH/<stream>-<n>-<ts>-<uuid>.gz`.
RAW_EVENTS: Final = "raw/events"
#: Catalog dumps: `raw/catalog/<dump-ts>/{items,users}.*`.
RAW_CATALOG: Final = "raw/catalog"
#: Parquet tables `curated/{interactions,items,users}/` (interactions by `event_date=`).
CURATED: Final = "curated"
#: The interactions table's Hive partition column, a UTC date: `event_date=2026-11-01/`.
INTERACTIONS_PARTITION: Final = "event_date"


def interactions_day(event_date: str) -> str:
    """The folder of one day of curated interactions: `curated/interactions/event_date=D`."""
    return f"{CURATED}/interactions/{INTERACTIONS_PARTITION}={event_date}"


#: Refused records, with the reason, by who refused them.
QUARANTINE: Final = "quarantine"
QUARANTINE_EVENTS: Final = f"{QUARANTINE}/events"
QUARANTINE_CATALOG: Final = f"{QUARANTINE}/catalog"
QUARANTINE_IMPORT: Final = f"{QUARANTINE}/import"


def import_taken(run: str) -> str:
    """Which of an import run's refused interactions later imports took in (by line)."""
    return f"{QUARANTINE_IMPORT}/{run}/interactions/taken.json"


#: Amazon Personalize's import files: `exports/personalize/<run>/`.
PERSONALIZE_EXPORTS: Final = "exports/personalize"
#: Model versions, `models/<version>/`, and the production pointer.
MODELS: Final = "models"
PRODUCTION: Final = f"{MODELS}/production.json"
#: `batch/<version>/{users,items}.jsonl`: each version's recommendations, in Personalize's
#: batch output format, which `recs publish` loads into the online store.
BATCH: Final = "batch"
#: A Personalize batch inference job's input: `batch-input/<version>/users.json`.
BATCH_INPUT: Final = "batch-input"
#: A table-swap publish's staged rows: `store-import/<version>/` (serving/store.py).
STORE_IMPORT: Final = "store-import"
#: Bookmarks, run records and locks.
STATE: Final = "_state"
ETL_STATE: Final = f"{STATE}/etl"
RUNS: Final = f"{STATE}/runs"
LOCKS: Final = f"{STATE}/locks"
#: Each A/B experiment's record, `_state/experiments/<id>.json` (serving/experiment.py).
EXPERIMENTS: Final = f"{STATE}/experiments"
#: The last day of interactions Personalize has imported (written by training).
PERSONALIZE_IMPORTED: Final = f"{STATE}/personalize/imported.json"
#: The Glue job's script, wheel and module list (`make glue-artifacts`, CI).
ARTIFACTS: Final = "artifacts"

#: The top-level folders of a lake, one per zone. A folder that holds files but none of
#: these is not a lake, and no command writes into it.
ZONES: Final = frozenset(
    path.split("/", 1)[0]
    for path in (
        RAW_EVENTS, CURATED, QUARANTINE, PERSONALIZE_EXPORTS, MODELS, BATCH, BATCH_INPUT,
        STORE_IMPORT, STATE, ARTIFACTS,
    )
)  # fmt: skip
