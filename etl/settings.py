"""The ETL's settings, read once from the environment; an explicit argument wins."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ingestion.errors import SettingsError


@dataclass(frozen=True)
class EtlSettings:
    """Settings of `recs etl`, `recs export` and `recs sql`.

    | variable | meaning | default |
    |---|---|---|
    | RECS_LAKE | lake root, a folder or s3://bucket/prefix | ./lake |
    | RECS_GLUE_DATABASE | Glue database for the curated tables (S3 lakes only) | recs |
    | RECS_ETL_BATCH_MB | decompressed raw JSON per batch; bounds memory | 96 |
    """

    lake: str = "./lake"
    glue_database: str = "recs"
    batch_mb: int = 96

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> EtlSettings:
        """Read RECS_* variables; keyword arguments that are not None override them."""
        env = os.environ if env is None else env
        raw_batch = env.get("RECS_ETL_BATCH_MB", "96")
        try:
            batch_mb = int(raw_batch)
        except ValueError:
            raise SettingsError(
                f"RECS_ETL_BATCH_MB must be a whole number, not {raw_batch!r}"
            ) from None
        settings = cls(
            lake=env.get("RECS_LAKE") or "./lake",
            glue_database=env.get("RECS_GLUE_DATABASE") or "recs",
            batch_mb=batch_mb,
        )
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        if settings.batch_mb < 1:
            raise SettingsError(f"RECS_ETL_BATCH_MB must be at least 1, not {settings.batch_mb}")
        if not settings.glue_database.replace("_", "").isalnum():
            raise SettingsError(
                f"RECS_GLUE_DATABASE {settings.glue_database!r} must be letters, digits and _"
            )
        return settings
