"""Settings of the API, read once from the environment when the app is built.

- RECS_LAKE: lake root with the published versions' models (./lake)
- RECS_STORE: online store, a SQLite file or dynamodb://table (./var/online-store.sqlite3)
- RECS_IDEMPOTENCY_STORE: Idempotency-Key records, a SQLite file or dynamodb://table
  (./var/idempotency.sqlite3)
- RECS_HISTORY: recent events per user, `local` (the sink's event log) or dynamodb://table
- PERSONALIZE_CAMPAIGN_ARN: answer personalized requests from this Amazon Personalize
  campaign (unset: our own model); RECS_PERSONALIZE_FILTER_ARN: its not-purchased filter
- RECS_API_KEYS: comma-separated keys; when set, every request but health and the docs
  needs an `X-Api-Key` header (unset: open)
- RECS_CORS_ORIGINS: comma-separated origins a browser may call the API from (unset: none)
- RECS_MODEL_CHECK_SECONDS: how often to look for a newly published version (30)

Where events go is the ingestion settings' business (RECS_SINK and friends).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from ingestion.errors import SettingsError
from ingestion.settings import IngestionSettings
from serving.store import DEFAULT_STORE

DEFAULT_IDEMPOTENCY_STORE: Final = "./var/idempotency.sqlite3"


def _csv(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


@dataclass(frozen=True)
class ServingSettings:
    """Everything the API reads from its environment."""

    store: str = DEFAULT_STORE
    idempotency_store: str = DEFAULT_IDEMPOTENCY_STORE
    history: str = "local"
    personalize_campaign_arn: str | None = None
    personalize_filter_arn: str | None = None
    api_keys: frozenset[str] = field(default_factory=frozenset, repr=False)
    cors_origins: tuple[str, ...] = ()
    model_check_seconds: float = 30.0
    ingestion: IngestionSettings = field(default_factory=IngestionSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServingSettings:
        """Read the environment once; keyword arguments that are not None win over it."""
        env = os.environ if env is None else env
        raw_check = env.get("RECS_MODEL_CHECK_SECONDS") or "30"
        try:
            check = float(raw_check)
        except ValueError:
            raise SettingsError(
                f"RECS_MODEL_CHECK_SECONDS must be a number of seconds (got {raw_check!r})"
            ) from None
        if check < 0:
            raise SettingsError(f"RECS_MODEL_CHECK_SECONDS must not be negative (got {raw_check})")
        settings = cls(
            store=env.get("RECS_STORE") or DEFAULT_STORE,
            idempotency_store=env.get("RECS_IDEMPOTENCY_STORE") or DEFAULT_IDEMPOTENCY_STORE,
            history=env.get("RECS_HISTORY") or "local",
            personalize_campaign_arn=env.get("PERSONALIZE_CAMPAIGN_ARN") or None,
            personalize_filter_arn=env.get("RECS_PERSONALIZE_FILTER_ARN") or None,
            api_keys=frozenset(_csv(env.get("RECS_API_KEYS"))),
            cors_origins=_csv(env.get("RECS_CORS_ORIGINS")),
            model_check_seconds=check,
            ingestion=IngestionSettings.from_env(env),
        )
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        settings.check()
        return settings

    def check(self) -> None:
        """Fail on values that cannot work, naming the variable to set."""
        if self.history != "local" and not self.history.startswith("dynamodb://"):
            raise SettingsError(
                f"RECS_HISTORY must be `local` or dynamodb://table (got {self.history!r})"
            )
        if self.history == "local" and self.ingestion.sink != "local":
            raise SettingsError(
                f"RECS_HISTORY=local reads the local sink's event log, but RECS_SINK is "
                f"{self.ingestion.sink}; set RECS_HISTORY=dynamodb://table (the history table "
                "the Kinesis consumer fills)"
            )
        for origin in self.cors_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise SettingsError(
                    f"RECS_CORS_ORIGINS: {origin!r} is not an origin such as https://shop.example"
                )
        if self.personalize_campaign_arn and not self.personalize_campaign_arn.startswith(
            "arn:aws"
        ):
            raise SettingsError(
                f"PERSONALIZE_CAMPAIGN_ARN must be a campaign ARN (got "
                f"{self.personalize_campaign_arn!r})"
            )
