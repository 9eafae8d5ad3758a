"""`recs publish`: load a trained version's batch output into the online store, then flip.

Serving owns the store, so this lives here although it runs after training. It refuses a
version the promotion gate kept as a candidate (`ModelRejected`) unless forced, and one the
API could not load (`ModelUnreadable`) even if forced; it records the
live version in `models/production.json` for the next training run's gate, and keeps the
previous version in the store for a rollback, dropping older ones.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from common.lake import Lake, damaged
from common.layout import BATCH, MODELS
from common.progress import Progress, quiet
from serving.errors import ExperimentRunning
from serving.experiment import Experiment, end_record
from serving.store import OnlineStore, Row
from training.errors import ModelNotFound, ModelRejected, ModelUnreadable
from training.published import PublishedModel
from training.registry import Manifest, ProductionPointer, version_names

#: Versions kept in the store: the live one and the one before it, for a rollback.
KEEP: Final = 2


@dataclass
class PublishReport:
    """What a publish wrote and flipped."""

    version: str
    users: int = 0
    items: int = 0
    profiles: int = 0
    dropped: list[str] = field(default_factory=list)
    forced: bool = False
    #: The Personalize campaign moved to this version's solution version, if it has one.
    campaign: str | None = None


#: Moves a Personalize campaign to a version's solution version; returns the campaign's ARN.
Deploy = Callable[[Mapping[str, Any], Progress], str]


def _deploy_campaign(manifest: Mapping[str, Any], progress: Progress) -> str:
    from training.personalize_run import deploy_version

    return deploy_version(manifest, progress=progress)


def latest_version(lake: Lake) -> str:
    """The newest version with a manifest under models/."""
    versions = version_names(lake)
    if not versions:
        raise ModelRejected("no trained model under models/; run `recs train` first")
    return versions[-1]


def _rows(lake: Lake, version: str, name: str, field_name: str) -> Iterator[Row]:
    """A batch file's rows, read line by line: a big shop's is gigabytes."""
    key = f"{BATCH}/{version}/{name}.jsonl"
    try:
        lines = lake.lines(key)
        first = next(lines, None)
    except FileNotFoundError:
        raise ModelRejected(
            f"version {version} has no {key}; train it again with `recs train`"
        ) from None
    if first is None:
        return
    for number, line in enumerate(itertools.chain([first], lines), start=1):
        try:
            record = json.loads(line)
            output = record["output"]
            row = (record["input"][field_name], output["recommendedItems"], output["scores"])
        except (ValueError, KeyError, TypeError) as exc:
            raise damaged(lake, key, f"line {number} is not a batch record ({exc!r})") from None
        yield row


def keys_of(lake: Lake, version: str) -> Iterator[tuple[str, str]]:
    """The (kind, key) of every row a version has in the store, for dropping it."""
    for kind, name, field_name in (("user", "users", "userId"), ("item", "items", "itemId")):
        for key, _, _ in _rows(lake, version, name, field_name):
            yield kind, key
            if kind == "user":
                yield "profile", key  # absent for a version published before profiles


def _profiles(model: PublishedModel) -> Iterator[Row]:
    """Each trained user's history as a profile row (`training.profiles.profile_row`), for
    an API that loads the version without its users (RECS_MODEL_USERS=store)."""
    from training.profiles import profile_row

    for code in range(model.history.n_users):
        items, numbers = profile_row(model.history, code, model.item_ids)
        yield str(model.user_ids[code]), items, numbers


def write_rows(
    lake: Lake, store: OnlineStore, version: str, model: PublishedModel, progress: Progress
) -> tuple[int, int, int]:
    """Write a version's user, item and profile rows into the store, not yet live; return
    how many of each."""
    progress(f"version {version}: loading batch/{version}/users.jsonl into the online store")
    users = store.write_version(version, "user", _rows(lake, version, "users", "userId"))
    progress(f"  {users:,} users; loading batch/{version}/items.jsonl")
    items = store.write_version(version, "item", _rows(lake, version, "items", "itemId"))
    progress(f"  {items:,} items; loading each user's trained history (profile rows)")
    profiles = store.write_version(version, "profile", _profiles(model))
    progress(f"  {profiles:,} profiles")
    return users, items, profiles


def kept_reasons(lake: Lake, version: str) -> str | None:
    """Why the gate kept a version as a candidate, or None if it approved it."""
    manifest = _manifest(lake, version)
    if manifest.approved:
        return None
    return "; ".join(manifest.reasons) or "not approved"


def _manifest(lake: Lake, version: str) -> Manifest:
    try:
        return Manifest.load(lake, version)
    except ModelNotFound:
        raise ModelRejected(f"no model version {version} under {MODELS}/") from None


def publish(
    lake: Lake,
    store: OnlineStore,
    version: str | None = None,
    *,
    force: bool = False,
    progress: Progress = quiet,
    deploy: Deploy | None = None,
) -> PublishReport:
    """Write the version's rows, flip the pointer, record it as production, prune.

    A Personalize version first moves the stage's campaign to its solution version
    (`deploy`, by default `training.personalize_run.deploy_version`)."""
    version = version or latest_version(lake)
    experiment = store.experiment()
    if experiment is not None and experiment.get("candidate") != version:
        raise ExperimentRunning(
            f"experiment {experiment.get('id')} is testing {experiment.get('candidate')} "
            f"against production ({experiment.get('control')}); publishing {version} now "
            "would change its control arm under it. Stop it first: `recs models experiment "
            "stop` (or `stop --promote` to publish its candidate)"
        )
    reasons = kept_reasons(lake, version)
    if reasons is not None and not force:
        raise ModelRejected(
            f"version {version} is a candidate, not approved: {reasons}. "
            "Publish it anyway with --force"
        )
    report = PublishReport(version=version, forced=force)
    manifest = _manifest(lake, version)
    # A table swap whose import outlived the last try: its rows are staged, and checked.
    prepared = store.prepared(version)
    model: PublishedModel | None = None
    if prepared is None:
        try:
            # Loaded as the API will load it, before anything is written or flipped: a
            # version the API cannot read must never become the one it is told to serve.
            # Whole, it also gives the users' histories for their profile rows.
            model = PublishedModel.load(lake, version)
        except ModelUnreadable as exc:
            raise ModelUnreadable(f"not published, as the API could not load it: {exc}") from None
    if manifest.backend == "personalize":
        # The campaign moves first: if it fails, nothing was flipped and the store still
        # serves the old version beside the old campaign.
        report.campaign = (deploy or _deploy_campaign)(manifest.raw, progress)
    if model is not None:
        report.users, report.items, report.profiles = write_rows(
            lake, store, version, model, progress
        )
        progress(f"  switching readers to {version}")
    else:
        assert prepared is not None
        report.users, report.items = prepared.get("user", 0), prepared.get("item", 0)
        report.profiles = prepared.get("profile", 0)
        progress(f"version {version}: its rows were written by an earlier try; switching readers")
    store.activate(version)
    if experiment is not None:
        # The candidate is production now: the experiment that tested it is over.
        store.set_experiment(None)
        end_record(lake, Experiment.of(experiment), "promoted")

    pointer = ProductionPointer(lake)
    kept, dropped = pointer.next_history(version, KEEP)
    for old in dropped:
        progress(f"dropping version {old} from the online store (only {KEEP} are kept)")
        store.drop_version(old, keys_of(lake, old))
        report.dropped.append(old)
    pointer.flip(version, kept, forced=force, campaign=report.campaign)
    return report
