"""Command line of the training stage: `recs train`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import click

from common.cli import CommandFailed, clock, fails_cleanly, out, say, with_settings
from common.lake import lake_for_reading
from common.layout import PERSONALIZE_EXPORTS
from training.blend import REPEAT_POLICIES
from training.data import DEFAULT_WEIGHTS
from training.settings import TrainingSettings
from training.tuning import BUDGET_S

if TYPE_CHECKING:
    from training.pipeline import TrainReport


def _weights(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict[str, float]:
    if not value:
        return dict(DEFAULT_WEIGHTS)
    weights = dict(DEFAULT_WEIGHTS)
    for part in value.split(","):
        name, _, number = part.partition("=")
        if name.strip() not in DEFAULT_WEIGHTS:
            raise click.BadParameter(
                f"{name.strip()!r} is not an event type; use view, add_to_cart or purchase"
            )
        try:
            weights[name.strip()] = float(number)
        except ValueError:
            raise click.BadParameter(f"{part!r}: the weight must be a number") from None
        if weights[name.strip()] < 0:
            raise click.BadParameter(f"{part!r}: weights must not be negative")
    return weights


def _half_life(_ctx: click.Context, _param: click.Parameter, value: str) -> float | str | None:
    if value in ("auto", "none"):
        return None if value == "none" else "auto"
    try:
        days = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a number of days, none or auto") from None
    if days <= 0:
        raise click.BadParameter(f"{value!r}: the half-life must be more than 0 days")
    return days


@click.command("train")
@click.option(
    "--weights",
    callback=_weights,
    help="Event weights, e.g. view=1,add_to_cart=4,purchase=8 (the default).",
)
@click.option("--seed", default=42, show_default=True, help="Same seed, same split and model.")
@click.option(
    "--backend",
    type=click.Choice(["local", "personalize"]),
    default="local",
    show_default=True,
    help="Our own recipes, or Amazon Personalize (needs an S3 lake and --export).",
)
@click.option(
    "--export", "export_run", help="With --backend personalize: the export run to import."
)
@click.option(
    "--recipe",
    type=click.Choice(["auto", "item-knn", "ease", "als"]),
    default="auto",
    show_default=True,
    help="The collaborative recipe; auto tries each on validation folds and keeps the best "
    "(or none, where history and trending alone serve better). A named recipe is served, "
    "with the blend of history and trending tuned around it.",
)
@click.option(
    "--half-life",
    callback=_half_life,
    default="auto",
    show_default=True,
    help="Days after which a user's older events weigh half (none: no decay); auto chooses.",
)
@click.option(
    "--repeats",
    type=click.Choice(["auto", *REPEAT_POLICIES]),
    default="auto",
    show_default=True,
    help="Whether a user's own items may be recommended again; auto chooses from the data.",
)
@click.option(
    "--holdout",
    type=click.Choice(["time", "per-user"]),
    default="time",
    show_default=True,
    help="time: score what users did after a cut on global time; per-user: Personalize's "
    "newest 10% of the events of 10% of the users.",
)
@click.option(
    "--budget",
    type=click.FloatRange(min=0),
    default=BUDGET_S,
    show_default=True,
    help="Seconds of candidate fitting while tuning; candidates left when it is spent are "
    "skipped, and the manifest says so.",
)
@click.option(
    "--now",
    callback=clock,
    help="The training clock (UTC), which names the version; default: the time it starts.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Train even when the curated zone holds nothing new since production's version "
    "(the local backend; the pipeline checks either).",
)
@with_settings(TrainingSettings)
@fails_cleanly
def train_command(
    weights: dict[str, float],
    seed: int,
    backend: str,
    export_run: str | None,
    recipe: str,
    half_life: float | str | None,
    repeats: str,
    holdout: str,
    budget: float,
    now: datetime | None,
    force: bool,
    settings: TrainingSettings,
) -> None:
    """Choose what to serve from the data, fit it on everything, and write it out.

    Validation folds cut on global time choose the recipe, the recency half-life, whether a
    user's own items come back, and the blend of the recipe, the user's history and what is
    trending. The served recommendations are then scored on the newest events beside
    popularity. Writes models/<version>/ (artifacts and manifest.json with every choice and
    metric) and batch/<version>/ (Personalize's batch output format).

    \b
    Example: recs train --repeats allow --half-life 30
    """
    from training.freshness import nothing_new
    from training.pipeline import TrainOptions, train

    if backend == "personalize":
        _train_with_personalize(settings, export_run, now)
        return
    lake = lake_for_reading(settings.lake)
    reason = None if force else nothing_new(lake, settings.train_window_days, "--force")
    if reason is not None:
        out.print(f"Nothing to train: {reason}", highlight=False)
        return
    options = TrainOptions(
        weights=weights,
        seed=seed,
        recipe=recipe,
        half_life=half_life,
        repeats=repeats,
        holdout="time" if holdout == "time" else "per-user",
        budget_s=budget,
        window_days=settings.train_window_days,
        exploration="auto" if settings.exploration is None else settings.exploration,
        exploration_age_days=settings.exploration_age_days,
    )
    report = train(lake, options, now=now, progress=say)
    _print_trained(report)


def _print_trained(report: TrainReport) -> None:
    """What a training chose, how each model scored on the holdout, and the gate's verdict."""
    from training.artifacts import SERVED
    from training.metrics import CUTOFFS
    from training.tuning import SELECT_ON

    assert report.tuning is not None
    blend = report.tuning.blend
    out.print(
        f"Model version {report.version}: serves {report.chosen} (weights {blend.describe()}; "
        f"repeats: {blend.repeats}), chosen on {SELECT_ON}",
        highlight=False,
    )
    note = report.tuning.recipe_note()
    if note:
        out.print(f"  {note}: the blend's other parts do the work", highlight=False)
    header = [
        "scored",
        *(f"ndcg@{k}" for k in CUTOFFS),
        "recall@20",
        "mrr@25",
        "coverage",
        "unseen ndcg@10",
    ]
    out.print("  ".join(f"{h:>16}" for h in header))
    for name, metrics in report.metrics.items():
        cells = [
            *(metrics[f"normalized_discounted_cumulative_gain_at_{k}"] for k in CUTOFFS),
            metrics["recall_at_20"],
            metrics["mean_reciprocal_rank_at_25"],
            metrics["coverage"],
            report.discovery.get(name, float("nan")),
        ]
        mark = "*" if name == SERVED else " "
        out.print(f"{mark + name:>16}  " + "  ".join(f"{c:>16.4f}" for c in cells))
    if report.gate is not None:
        verdict = "approved for publishing" if report.gate.passed else "kept as a candidate"
        out.print(f"Gate: {verdict}: {'; '.join(report.gate.reasons)}")
    for key in report.files:
        out.print(f"  {key}")


def _train_with_personalize(
    settings: TrainingSettings, export_run: str | None, now: datetime | None
) -> None:
    from datetime import UTC

    from training.personalize import PersonalizeSettings
    from training.registry import Manifest
    from training.trainer import PersonalizeBackend

    if not export_run:
        raise CommandFailed(
            "--backend personalize needs --export RUN (see `recs export personalize`)"
        )
    PersonalizeSettings.from_settings(settings)  # a missing role is named before anything runs
    lake = lake_for_reading(settings.lake)
    trained = PersonalizeBackend(settings).train(
        lake,
        now=now or datetime.now(UTC),
        export_prefix=f"{PERSONALIZE_EXPORTS}/{export_run}",
        progress=say,
    )
    manifest = Manifest.load(lake, trained.version)
    users = manifest.raw["personalize_users"]
    out.print(f"Personalize version {trained.version}: {users:,} users")
    for name, value in sorted(manifest.metrics["personalize"].items()):
        out.print(f"  {name:45} {value:.4f}")
    verdict = "approved for publishing" if manifest.approved else "kept"
    out.print(f"Gate: {verdict}: {'; '.join(manifest.reasons)}")


@click.command("evaluate")
@click.argument("version", required=False)
@click.option("--seed", default=42, show_default=True, help="Seed of the holdout.")
@with_settings(TrainingSettings, only=("lake",))
@fails_cleanly
def evaluate_command(version: str | None, seed: int, settings: TrainingSettings) -> None:
    """Score a model version (default: the one in production) on the current data.

    Prints its metrics beside popularity's and appends them to the version's manifest.

    \b
    Example: recs evaluate 20261124T230000Z
    """
    from training.evaluate import evaluate_version

    result = evaluate_version(
        lake_for_reading(settings.lake),
        version,
        seed=seed,
        progress=say,
    )
    scope = (
        "held-out events newer than its data"
        if result.unseen_only
        else "a holdout that overlaps its training data (flattering)"
    )
    out.print(f"Version {result.version} on {result.events:,} events, scored on {scope}:")
    for name in ("normalized_discounted_cumulative_gain_at_10", "recall_at_20", "coverage"):
        out.print(
            f"  {name:45} {result.metrics[name]:.4f}   popularity-count "
            f"{result.popularity[name]:.4f}"
        )


COMMANDS: list[click.Command] = [train_command, evaluate_command]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The training stage of recs."""


for _command in COMMANDS:
    main.add_command(_command)
