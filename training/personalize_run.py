"""One Personalize version on top of ours: what the export holds, the batch job's input,
the gate on Personalize's own metrics, and the run that imports, trains, batch-recommends,
gates and records (`train_with_personalize`); then `deploy_version`, which `recs publish`
calls to move the stage's campaign to the version before the flip.

The service calls themselves are `training.personalize.PersonalizeTrainer`'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from common.lake import Lake, read_json
from common.layout import BATCH, BATCH_INPUT
from common.progress import Progress, quiet
from etl.personalize import interaction_parts, mark_imported
from training.artifacts import SERVED
from training.errors import ModelNotFound, TrainingFailed
from training.metrics import K
from training.personalize import (
    DATASET_TYPES,
    PersonalizeRun,
    PersonalizeSettings,
    PersonalizeTrainer,
)
from training.registry import Manifest, production_version

if TYPE_CHECKING:
    from mypy_boto3_personalize import PersonalizeClient


def _user_ids(interactions_csv: bytes) -> set[str]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        pa.BufferReader(interactions_csv),
        convert_options=pacsv.ConvertOptions(
            column_types={"USER_ID": pa.string()}, include_columns=["USER_ID"]
        ),
    )
    return set(pc.unique(table["USER_ID"]).to_pylist())


def export_kind(
    lake: Lake, export_prefix: str
) -> tuple[Literal["FULL", "INCREMENTAL"], date | None]:
    """An export's import mode and the last day of interactions it holds (`export.json`; an
    export from before it existed is whole)."""
    key = f"{export_prefix}/export.json"
    if not lake.exists(key):
        return "FULL", None
    found = read_json(lake, key)
    mode: Literal["FULL", "INCREMENTAL"] = (
        "INCREMENTAL" if found.get("mode") == "INCREMENTAL" else "FULL"
    )
    through = found.get("through")
    return mode, date.fromisoformat(through) if through else None


def export_parts(lake: Lake, export_prefix: str) -> list[str]:
    """The export's interaction files, relative to its prefix."""
    return [key.removeprefix(f"{export_prefix}/") for key in interaction_parts(lake, export_prefix)]


def export_schemas(lake: Lake, export_prefix: str) -> dict[str, Any]:
    """The export's schema per dataset type; the interactions one is required."""
    schemas = {}
    for dataset_type in DATASET_TYPES:
        schema_key = f"{export_prefix}/{dataset_type.lower()}.schema.json"
        if lake.exists(schema_key):
            schemas[dataset_type] = read_json(lake, schema_key)
    if "Interactions" not in schemas:
        raise TrainingFailed(
            f"no interactions export under {export_prefix}/; run `recs export personalize`"
        )
    return schemas


def batch_input(lake: Lake, export_prefix: str, version: str) -> tuple[str, int]:
    """Write the batch job's input, every user of the export; return its URL and count."""
    key = f"{BATCH_INPUT}/{version}/users.json"
    keys = interaction_parts(lake, export_prefix)
    users = sorted(set().union(*(_user_ids(lake.read_bytes(key)) for key in keys)))
    lake.write_bytes(key, "".join(json.dumps({"userId": u}) + "\n" for u in users).encode())
    return lake.url(key), len(users)


def _merged_batch(lake: Lake, version: str) -> tuple[bytes, int]:
    """Personalize's batch output over our own rows for the same version: each user it
    answered gets its answer; a user it could not answer keeps ours. Returns the file and
    how many users Personalize answered."""
    ours: dict[str, bytes] = {}
    key = f"{BATCH}/{version}/users.jsonl"
    if lake.exists(key):
        for line in lake.read_bytes(key).splitlines():
            if line.strip():
                ours[json.loads(line)["input"]["userId"]] = line
    answered = 0
    output = lake.read_bytes(f"{BATCH}/{version}/personalize/users.json.out")
    for line in output.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        items = (record.get("output") or {}).get("recommendedItems")
        if record.get("error") or not items:
            continue
        user = record["input"]["userId"]
        clean = {"input": {"userId": user}, "output": record["output"], "error": None}
        ours[user] = json.dumps(clean).encode()
        answered += 1
    return b"".join(line + b"\n" for _, line in sorted(ours.items())), answered


def personalize_gate(
    lake: Lake, metrics: Mapping[str, float], own: Mapping[str, Mapping[str, float]]
) -> dict[str, Any]:
    """The gate for a Personalize version: its own metrics against production's, on the
    metric names the two share (or, with nothing in production, against our popularity
    baseline). The holdouts differ, Personalize's and ours, and the reasons say so."""
    from training.tuning import SELECT_ON

    production = production_version(lake)
    theirs: Mapping[str, float]
    if production is not None:
        found = Manifest.load(lake, production)
        backend = found.backend
        theirs = found.metrics.get("personalize" if backend == "personalize" else SERVED) or {}
        against = f"production {production} ({backend})"
    else:
        theirs = own.get("popularity-count") or {}
        against = "popularity-count"
    shared = sorted(set(metrics) & set(theirs))
    note = (
        f"compared on the metric names both report ({', '.join(shared) or 'none'}); "
        "Personalize scored its own holdout"
        + (", production was scored on ours" if production else ", popularity on ours")
    )
    if SELECT_ON not in shared:
        return {
            "passed": False,
            "metric": SELECT_ON,
            "production_version": production,
            "reasons": [f"{SELECT_ON} is not reported by both this version and {against}; {note}"],
        }
    mine, other = float(metrics[SELECT_ON]), float(theirs[SELECT_ON])
    passed = mine > other
    verb = "beats" if passed else "does not beat"
    return {
        "passed": passed,
        "metric": SELECT_ON,
        "candidate": mine,
        "production_version": production,
        "production_metrics": dict(theirs),
        "reasons": [f"{SELECT_ON} {mine:.4f} {verb} {against}'s {other:.4f}; {note}"],
    }


def train_with_personalize(
    lake: Lake,
    trainer: PersonalizeTrainer,
    *,
    export_prefix: str,
    version: str,
    k: int = K,
    mode: Literal["FULL", "UPDATE"] = "FULL",
    progress: Progress = quiet,
) -> PersonalizeRun:
    """Import the export, train, batch-recommend, gate and record, on top of our own model.

    The version our local trainer wrote under the same name stays whole (the API's fallback,
    related items and realtime answers come from it). Personalize's batch output replaces
    its users' rows in `batch/<version>/users.jsonl`; the manifest gains `"backend":
    "personalize"`, the ARNs, the tracking id, Personalize's metrics and the gate's decision.
    The campaign is moved to the new solution version by `recs publish`, not here, so a
    version the gate keeps never reaches the campaign. Safe to call again after
    `TrainingPending`.
    """
    try:
        manifest = Manifest.load(lake, version)
    except ModelNotFound:
        raise TrainingFailed(
            f"no local version {version} to build on; the personalize trainer trains ours first"
        ) from None
    run = PersonalizeRun(version=version)
    schemas = export_schemas(lake, export_prefix)
    progress("Personalize: dataset group, datasets and import jobs")
    group = trainer.dataset_group()
    datasets = trainer.datasets(group, schemas)
    import_mode, through = export_kind(lake, export_prefix)
    parts = export_parts(lake, export_prefix)
    trainer.import_data(version, datasets, export_prefix, import_mode, parts)
    if through is not None:
        # Every import job finished: the next nightly export starts from this day.
        mark_imported(lake, through)
    progress("Personalize: training a solution version")
    version_arn, run.metrics = trainer.train(version, group, mode=mode)
    filter_arn = trainer.not_purchased_filter(group)
    named = trainer.named_filters(group)
    for name, arn in named.items():
        progress(f"  filter {name}: {arn} (its personalize_arn)")
    users_input, users = batch_input(lake, export_prefix, version)
    progress(f"Personalize: batch recommendations for {users:,} users")
    job = trainer.batch_recommendations(version, version_arn, users_input, filter_arn, k)
    merged, answered = _merged_batch(lake, version)
    lake.write_bytes(f"{BATCH}/{version}/users.jsonl", merged)
    progress(f"  {answered:,} users answered by Personalize; the rest keep our own rows")
    tracker, run.tracking_id = trainer.event_tracker(group)
    run.arns = {
        "dataset_group": group,
        **{f"dataset_{t.lower()}": arn for t, arn in datasets.items()},
        "solution_version": version_arn,
        "filter_not_purchased": filter_arn,
        **{f"filter_{name}": arn for name, arn in named.items()},
        "batch_inference_job": job,
        "event_tracker": tracker,
    }
    own_metrics = manifest.metrics
    gate = personalize_gate(lake, run.metrics, own_metrics)
    manifest.save(
        lake,
        backend="personalize",
        stage=trainer.settings.stage,
        personalize_recipe=trainer.settings.recipe_arn,
        training_mode=mode,
        import_mode=import_mode,
        metrics={**own_metrics, "personalize": run.metrics},
        arns=run.arns,
        tracking_id=run.tracking_id,
        export=export_prefix,
        personalize_users=answered,
        status="approved" if gate["passed"] else "candidate",
        gate=gate,
    )
    return run


def deploy_version(
    manifest: Mapping[str, Any],
    client: PersonalizeClient | None = None,
    progress: Progress = quiet,
) -> str:
    """Point the stage's campaign at a Personalize version's solution version (`recs
    publish` calls it before the flip); returns the campaign's ARN."""
    arns = manifest.get("arns") or {}
    if not arns.get("solution_version") or not manifest.get("stage"):
        raise TrainingFailed(
            f"version {manifest.get('version')} names no solution version or stage to deploy"
        )
    settings = PersonalizeSettings(stage=str(manifest["stage"]), role_arn="", lake_uri="")
    progress(f"Personalize: campaign recs-{settings.stage} to {arns['solution_version']}")
    return PersonalizeTrainer(settings, client=client).deploy(str(arns["solution_version"]))
