"""Settings of the API and of `recs publish`: the online store, keys, CORS and friends.

The API also takes every ingestion setting (its events go to the sink they name). Read once
when the app is built, through `common.settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from common.dynamodb import table_name
from common.filters import FilterSettings
from common.lake import Lake
from common.settings import LakeSettings
from ingestion.settings import HistorySettings, IngestionSettings
from serving.store import DEFAULT_STORE, DynamoStore, SQLiteStore, open_store

DEFAULT_IDEMPOTENCY_STORE: Final = "./var/idempotency.sqlite3"


def _listed(value: Any) -> Any:
    """A comma-separated string as a tuple of its non-blank parts; lists pass through."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class StoreSettings(LakeSettings):
    """Where published recommendations live: what `recs publish` writes and the API reads."""

    store: str = Field(
        DEFAULT_STORE,
        min_length=1,
        description="Online store: a SQLite file or dynamodb://table",
    )
    store_publish: Literal["rows", "import"] = Field(
        "rows",
        description="How `recs publish` fills a DynamoDB store: rows (BatchWriteItem into the "
        "table) or import (a table per version, made by DynamoDB's ImportTable from files in "
        "the S3 lake, then named by the pointer: no write capacity, for millions of users)",
    )
    store_kms_key: str | None = Field(
        None, description="KMS key for the tables an import publish makes (AWS-owned if unset)"
    )

    def publishing_store(self, lake: Lake) -> SQLiteStore | DynamoStore:
        """The store `recs publish`, `recs models promote|rollback` and the pipeline publish
        into: by rows, or by table swap staged in `lake`."""
        return open_store(
            self.store, publish=self.store_publish, lake=lake, kms_key=self.store_kms_key
        )

    @field_validator("store")
    @classmethod
    def _store_uri(cls, value: str) -> str:
        table = table_name(value)
        if "://" in value and table is None:
            raise ValueError("must be a file path or dynamodb://table-name")
        if table == "":
            raise ValueError("names no table; use dynamodb://table-name")
        return value


class ServingSettings(FilterSettings, IngestionSettings, HistorySettings, StoreSettings):
    """Everything the API reads: the store, history, keys, CORS, and where events go."""

    idempotency_store: str = Field(
        DEFAULT_IDEMPOTENCY_STORE,
        min_length=1,
        description="Idempotency-Key records: a SQLite file or dynamodb://table",
    )
    personalize_campaign_arn: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "personalize_campaign_arn", "recs_personalize_campaign_arn", "PERSONALIZE_CAMPAIGN_ARN"
        ),
        description="Answer personalized requests from this Amazon Personalize campaign",
    )
    personalize_filter_arn: str | None = Field(
        None, description="The campaign's not-purchased filter"
    )
    hide_carted: bool = Field(
        True,
        description="Leave out of personalized answers what the user has in the cart and has "
        "not bought since (false: offer it like any item)",
    )
    api_keys: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(),
        repr=False,
        description="Comma-separated API keys; when set, requests need X-Api-Key",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Comma-separated origins browsers may call the API from"
    )
    model_check_seconds: float = Field(
        30.0, ge=0, description="How often the API looks for a newly published version"
    )
    log_file: Path | None = Field(
        None,
        description="The file `recs serve`'s workers log to, rotated (else the terminal)",
    )
    model_users: Literal["lake", "store"] = Field(
        "lake",
        description="Where realtime answers read each user's trained history: the version's "
        "files, loaded whole (lake), or the profile rows `recs publish` writes to the store "
        "(store: the API then holds only the item side, for shops of millions of users)",
    )

    _split = field_validator("cors_origins", mode="before")(_listed)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        keys = _listed(value)
        if value and not keys:
            # An empty list would leave the API open while its operator thinks it is locked.
            raise ValueError("lists no key; list the keys, or leave it unset for an open API")
        return keys

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(
                    f"must list origins such as https://shop.example; {origin!r} is not one"
                )
        return value

    @field_validator("personalize_campaign_arn")
    @classmethod
    def _campaign(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("arn:aws"):
            raise ValueError("must be a campaign ARN")
        return value

    def local_files_beside_aws(self) -> list[str]:
        """The settings that still name a file on this machine while the lake or the store
        is on AWS, each with what to set instead. On a Lambda those files would be written
        to a disk that disappears with the instance, so events and keys would be lost."""
        if not (self.lake.startswith("s3://") or self.store.startswith("dynamodb://")):
            return []
        gaps = []
        if self.sink == "local":
            gaps.append(
                f"RECS_SINK=local writes events to {self.event_log}: set RECS_SINK=kinesis and "
                "RECS_KINESIS_STREAM (Terraform output kinesis_stream)"
            )
        if not self.idempotency_store.startswith("dynamodb://"):
            gaps.append(
                f"RECS_IDEMPOTENCY_STORE is the file {self.idempotency_store}: set it to "
                "dynamodb://TABLE (Terraform output idempotency_store)"
            )
        if self.history == "local":
            gaps.append(
                "RECS_HISTORY=local reads the local event log: set it to dynamodb://TABLE "
                "(Terraform output history)"
            )
        if not self.store.startswith("dynamodb://"):
            gaps.append(
                f"RECS_STORE is the file {self.store}: set it to dynamodb://TABLE "
                "(Terraform output online_store)"
            )
        if not self.lake.startswith("s3://"):
            gaps.append(
                f"RECS_LAKE is the folder {self.lake}: set it to s3://BUCKET "
                "(Terraform output lake_uri)"
            )
        return gaps

    def refuse_local_files_beside_aws(self, who: str) -> None:
        """Raise `SettingsError` naming each gap of `local_files_beside_aws`: on AWS, a
        setting left on a local file is an error at start-up, never a file quietly lost."""
        from common.errors import SettingsError

        gaps = self.local_files_beside_aws()
        if gaps:
            raise SettingsError(
                f"{who}: the lake or the online store is on AWS, but these settings still "
                "name local files:\n  - " + "\n  - ".join(gaps)
            )

    @model_validator(mode="after")
    def _tracker_once(self) -> Self:
        if self.personalize_tracking_id and self.sink == "kinesis":
            raise ValueError(
                "RECS_PERSONALIZE_TRACKING_ID is set on the API, but with RECS_SINK=kinesis "
                "the Kinesis consumer forwards every event to the tracker; set it on the "
                "consumer only, or each event reaches Personalize twice"
            )
        return self

    @model_validator(mode="after")
    def _history_needs_local_sink(self) -> Self:
        if self.history == "local" and self.sink != "local":
            raise ValueError(
                f"RECS_HISTORY=local reads the local sink's event log, but RECS_SINK is "
                f"{self.sink}; set RECS_HISTORY=dynamodb://table (the history table the "
                "Kinesis consumer fills)"
            )
        return self
