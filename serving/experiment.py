"""An A/B split between two published model versions: the candidate answers a stable share of
shoppers, production (the control) answers the rest, and every answer's recommendationId
names the version that made it.

The online store holds the running experiment beside the live pointer (what the API obeys);
the lake keeps each experiment's record, `_state/experiments/<id>.json` (what `recs models
experiment status` and the ops page read, with the outcome once it stops). A shopper's arm is
a pure hash of the experiment's id and their user id, so the same shopper sees the same
version on every request and every API worker, with nothing logged per request, and the
outcome can be read back from the curated events alone (`orchestration.outcomes`).
Starting and stopping one is `serving.experiment_control`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from common.contract import format_ts
from common.lake import Lake, damaged, read_json
from common.layout import EXPERIMENTS
from serving.store import OnlineStore

Metric = Literal["click-through", "conversion"]
METRICS: Final = ("click-through", "conversion")
#: Days an experiment runs before a difference may be called: a whole week of shopping, so
#: that weekdays and the weekend both count, and a first lucky day cannot decide it.
MIN_DAYS: Final = 7
#: Between a recommendationId's own id and the version that made it.
SEPARATOR: Final = "@"


def recommendation_id(version: str) -> str:
    """A new answer's recommendationId: a UUID, then the version that made the answer."""
    return f"{uuid.uuid4()}{SEPARATOR}{version}"


def version_of(recommendation_id: str | None) -> str | None:
    """The version a recommendationId names (None for one from Personalize, or from before
    ids named their version)."""
    if not recommendation_id or SEPARATOR not in recommendation_id:
        return None
    return recommendation_id.rsplit(SEPARATOR, 1)[1] or None


def share_of(user_id: str, salt: str) -> float:
    """Where a shopper falls in [0, 1) for an experiment: BLAKE2b of salt and user id."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Experiment:
    """A running (or, with `stopped_at`, finished) split of shoppers between two versions."""

    id: str
    candidate: str
    control: str
    #: The candidate's share of shoppers, in (0, 1).
    share: float
    started_at: str
    #: The outcome that decides it: shoppers acting on a recommendation (`click-through`),
    #: or buying an item they reached through one (`conversion`).
    metric: Metric = "click-through"
    min_days: int = MIN_DAYS
    stopped_at: str | None = None
    #: How it ended: `promoted` (the candidate went live) or `stopped`.
    ended: str | None = None

    def assigned(self, user_id: str) -> bool:
        """Whether the shopper is in the candidate's arm."""
        return share_of(user_id, self.id) < self.share

    def body(self) -> dict[str, Any]:
        """As the store and the lake keep it."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Experiment:
        """From what the store or the lake kept; ValueError if it is not an experiment."""
        try:
            found = cls(
                id=str(body["id"]),
                candidate=str(body["candidate"]),
                control=str(body["control"]),
                share=float(body["share"]),
                started_at=str(body["started_at"]),
                metric=body.get("metric", "click-through"),
                min_days=int(body.get("min_days", MIN_DAYS)),
                stopped_at=body.get("stopped_at"),
                ended=body.get("ended"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an experiment ({exc!r}): {dict(body)}") from None
        if found.metric not in METRICS or not 0 < found.share < 1:
            raise ValueError(f"not an experiment (metric or share out of range): {dict(body)}")
        return found

    def days(self, now: datetime) -> float:
        """How long it has run (until it stopped), in days."""
        end = datetime.fromisoformat(self.stopped_at) if self.stopped_at else now
        return (end - datetime.fromisoformat(self.started_at)).total_seconds() / 86400


def record_key(experiment_id: str) -> str:
    """Where the lake keeps an experiment's record."""
    return f"{EXPERIMENTS}/{experiment_id}.json"


def save_record(lake: Lake, experiment: Experiment, **extra: Any) -> None:
    """Write the experiment's record (with `extra`, e.g. its final outcome) to the lake."""
    body = {**experiment.body(), **extra}
    lake.write_bytes(record_key(experiment.id), json.dumps(body, indent=2).encode())


def records(lake: Lake) -> list[tuple[Experiment, dict[str, Any]]]:
    """Every experiment the lake has a record of, oldest first, with the whole record."""
    found = []
    for key in sorted(lake.list(f"{EXPERIMENTS}/")):
        if not key.endswith(".json"):
            continue
        raw = read_json(lake, key)
        try:
            found.append((Experiment.of(raw), dict(raw)))
        except (ValueError, AttributeError):
            raise damaged(lake, key, "not an experiment record") from None
    return sorted(found, key=lambda pair: pair[0].started_at)


def end_record(
    lake: Lake, experiment: Experiment, ended: str, now: datetime | None = None, **extra: Any
) -> Experiment:
    """Record the experiment as ended (`promoted` or `stopped`) `now` in the lake."""
    clock = now or datetime.now(UTC)
    done = Experiment.of({**experiment.body(), "stopped_at": format_ts(clock), "ended": ended})
    save_record(lake, done, **extra)
    return done


def running(store: OnlineStore) -> Experiment | None:
    """The experiment the API is splitting shoppers by, if one runs."""
    body = store.experiment()
    return None if body is None else Experiment.of(body)
