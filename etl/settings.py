"""The ETL's settings: the lake, the Glue database and how much raw JSON a batch holds."""

from __future__ import annotations

from pydantic import Field, field_validator

from common.settings import LakeSettings


class EtlSettings(LakeSettings):
    """Settings of `recs etl`, `recs export` and `recs sql`."""

    glue_database: str = Field(
        "recs", description="Glue database for the curated tables (S3 lakes only)"
    )
    etl_batch_mb: int = Field(
        96, ge=1, description="Decompressed raw JSON the ETL holds at once, in MiB; bounds memory"
    )

    personalize_part_mb: float = Field(
        900,
        gt=0,
        le=990,
        description="Most MB of interactions in one Personalize import file (a job takes 1 GB)",
    )
    export_memory_mb: int = Field(
        1024, ge=64, description="Memory DuckDB may use for the Personalize export, in MiB"
    )

    @field_validator("glue_database")
    @classmethod
    def _glue_name(cls, value: str) -> str:
        if not value.replace("_", "").isalnum():
            raise ValueError("must be letters, digits and _")
        return value
