"""The model registry: where versions are named, found and read, and the production pointer.

A version is `models/<version>/`, complete once its `manifest.json` is written; `Manifest`
reads it, typed where other stages read it, and keeps the whole document in `raw` for what
only a report shows. `ProductionPointer` is `models/production.json`: the live version, the
ones before it that the online store keeps for a rollback, and who flipped it. Every stage
goes through these two, so a field or the pointer's shape changes in one place.

Light on purpose (the lake and the layout only): the pipeline Lambda and the API import it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from common.contract import format_ts
from common.lake import Lake, damaged, read_json
from common.layout import MODELS, PRODUCTION
from training.errors import ModelNotFound

MANIFEST: Final = "manifest.json"
#: What a version serves when the manifest names no recipe: the blend of history and trending.
HISTORY_AND_TRENDING: Final = "history and trending"


def version_name(now: datetime) -> str:
    """A version's name: its training clock, to the second."""
    return f"{now:%Y%m%dT%H%M%SZ}"


def manifest_key(version: str) -> str:
    """Where a version's manifest is."""
    return f"{MODELS}/{version}/{MANIFEST}"


def version_names(lake: Lake) -> list[str]:
    """Every complete version (one with a manifest), oldest first."""
    return sorted(
        key.split("/")[1] for key in lake.list(f"{MODELS}/") if key.endswith(f"/{MANIFEST}")
    )


def is_complete(lake: Lake, version: str) -> bool:
    """Whether a version's manifest is written (its files are all there)."""
    return lake.exists(manifest_key(version))


@dataclass(frozen=True)
class Manifest:
    """A version's `manifest.json`: the fields other stages read, typed; all of it in `raw`."""

    version: str
    raw: Mapping[str, Any]

    @classmethod
    def load(cls, lake: Lake, version: str) -> Manifest:
        """Read it, or `ModelNotFound` saying what to run; `DamagedObject` if not a JSON
        object."""
        key = manifest_key(version)
        try:
            found = read_json(lake, key)
        except FileNotFoundError:
            raise ModelNotFound(
                f"no model version {version} under {MODELS}/ (`recs models list` shows them; "
                "a version is complete once its manifest.json is written)"
            ) from None
        if not isinstance(found, dict):
            raise damaged(lake, key, "not a JSON object")
        return cls(version, found)

    def save(self, lake: Lake, **changes: Any) -> Manifest:
        """Write it back with `changes` over its fields; return what was written."""
        updated = Manifest(self.version, {**self.raw, **changes})
        lake.write_bytes(manifest_key(self.version), json.dumps(updated.raw, indent=2).encode())
        return updated

    @property
    def status(self) -> str:
        """`approved` or `candidate`, as the gate decided."""
        return str(self.raw.get("status", "candidate"))

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @property
    def backend(self) -> str:
        """`local` (our recipes) or `personalize`."""
        return str(self.raw.get("backend", "local"))

    @property
    def chosen(self) -> str | None:
        """The recipe the blend's collaborative part uses, by name; None: none (history and
        trending alone)."""
        found = self.raw.get("chosen")
        return None if found is None else str(found)

    @property
    def recipe(self) -> str:
        """What the version serves, in words (`item-knn (alpha 0.5), reranked by ...`)."""
        return str(self.raw.get("chosen_label") or self.chosen or HISTORY_AND_TRENDING)

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """Each scored model's metrics on the holdout, by name (`served`, the baselines and,
        for a Personalize version, `personalize`)."""
        return dict(self.raw.get("metrics") or {})

    @property
    def gate(self) -> dict[str, Any]:
        """The gate's decision: `reasons`, and the comparisons it made."""
        return dict(self.raw.get("gate") or {})

    @property
    def reasons(self) -> list[str]:
        return list(self.gate.get("reasons", []))

    @property
    def artifacts(self) -> list[str]:
        """The `.npz` files under the version's folder."""
        return list(self.raw.get("artifacts", []))

    @property
    def event_weights(self) -> dict[str, float] | None:
        found = self.raw.get("event_weights")
        return None if found is None else dict(found)


@dataclass(frozen=True)
class Production:
    """What `models/production.json` says."""

    version: str
    published_at: str
    forced: bool
    #: The versions the online store keeps, oldest first; the last is `version`.
    history: list[str]
    campaign: str | None = None


@dataclass(frozen=True)
class ProductionPointer:
    """`models/production.json`: the live version and the ones the store keeps before it."""

    lake: Lake

    def read(self) -> Production | None:
        """The pointer, or None before the first publish; `DamagedObject` if it is not one."""
        try:
            found = read_json(self.lake, PRODUCTION)
        except FileNotFoundError:
            return None
        if not isinstance(found, dict) or not isinstance(found.get("version"), str):
            raise damaged(self.lake, PRODUCTION, "it names no version")
        history = found.get("history") or [found["version"]]
        return Production(
            version=found["version"],
            published_at=str(found.get("published_at", "")),
            forced=bool(found.get("forced", False)),
            history=[str(v) for v in history],
            campaign=found.get("campaign"),
        )

    def version(self) -> str | None:
        """The live version, if any was published."""
        found = self.read()
        return None if found is None else found.version

    def history(self) -> list[str]:
        """The kept versions, oldest first (empty before the first publish)."""
        found = self.read()
        return [] if found is None else found.history

    def next_history(self, version: str, keep: int) -> tuple[list[str], list[str]]:
        """If `version` went live now: the versions kept (it last), and those let go."""
        history = [v for v in self.history() if v != version] + [version]
        return history[-keep:], history[:-keep]

    def flip(
        self, version: str, kept: list[str], *, forced: bool, campaign: str | None = None
    ) -> Production:
        """Record `version` as live, with the versions kept before it."""
        production = Production(
            version=version,
            published_at=format_ts(datetime.now(UTC)),
            forced=forced,
            history=kept,
            campaign=campaign,
        )
        body = {k: v for k, v in asdict(production).items() if k != "campaign" or v}
        self.lake.write_bytes(PRODUCTION, json.dumps(body, indent=2).encode())
        return production


def production_version(lake: Lake) -> str | None:
    """The version `recs publish` last made live, if any."""
    return ProductionPointer(lake).version()
