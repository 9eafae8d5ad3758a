"""The local runner in process: retries, a failing step that still reaches notify, resume."""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from common.contract import Event
from common.lake import LocalLake
from ingestion.generator import ShopSpec, generate_shop, write_catalog, write_raw
from ingestion.sinks import make_sink
from ingestion.sinks.local import LocalSink
from orchestration.commands import next_run, schedule
from orchestration.notify import summary
from orchestration.runner import PipelineFailed, run_pipeline, start_run
from orchestration.runs import PIPELINE_LOCK, RunNotFound, RunRecord, resumable, shown_status
from orchestration.settings import PipelineSettings
from orchestration.steps import STEPS, steps_for

NOW = datetime(2026, 11, 2, 2, tzinfo=UTC)


@pytest.fixture
def shop(tmp_path: Path) -> tuple[LocalLake, PipelineSettings]:
    lake = LocalLake(tmp_path / "lake")
    generated = generate_shop(
        ShopSpec(users=300, items=120, categories=5, days=30, events=8000, seed=4, end=NOW)
    )
    write_raw(generated, lake)
    write_catalog(generated, lake)
    settings = PipelineSettings(
        lake=str(tmp_path / "lake"),
        event_log=tmp_path / "var" / "log.sqlite3",
        store=str(tmp_path / "var" / "store.sqlite3"),
    )
    return lake, settings


def test_one_definition_orders_the_steps_for_each_trainer() -> None:
    assert [s.name for s in steps_for("local")] == [
        "flush", "etl", "train", "evaluate", "gate", "publish", "notify"
    ]  # fmt: skip
    assert [s.name for s in steps_for("personalize")] == [s.name for s in STEPS]
    assert {s.owner for s in STEPS} == {"ingestion", "etl", "training", "serving", "orchestration"}


def test_a_retryable_error_is_tried_again_with_backoff(
    shop: tuple[LocalLake, PipelineSettings],
) -> None:
    lake, settings = shop
    waits: list[float] = []
    with ExitStack() as held:
        held.enter_context(lake.lock("etl", lease_s=60))  # another ETL run holds the lake

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            held.close()  # ...and finishes while we wait

        record = run_pipeline(lake, settings, now=NOW, sleep=sleep)
    etl = record.step("etl")
    assert etl.status == "succeeded"
    assert etl.attempts == 2
    assert waits == [5.0]
    assert record.status == "succeeded"


def test_a_failing_step_reaches_notify_and_resume_goes_on_from_it(
    shop: tuple[LocalLake, PipelineSettings],
) -> None:
    lake, settings = shop
    lines: list[str] = []
    with lake.lock("etl", lease_s=60), pytest.raises(PipelineFailed, match="step etl failed"):
        run_pipeline(lake, settings, now=NOW, progress=lines.append, sleep=lambda _s: None)
    record = resumable(lake)
    assert record.status == "failed"
    etl = record.step("etl")
    assert etl.status == "failed"
    assert etl.attempts == 3
    assert etl.error is not None
    assert etl.error.startswith("LakeLocked")
    # The failure was announced, saying what to do.
    assert any("failed at step etl" in line and "--resume" in line for line in lines)
    assert record.step("train").status == "pending"

    resumed = run_pipeline(lake, settings, resume=True)
    assert resumed.run_id == record.run_id
    assert resumed.resumed == 1
    assert resumed.status == "succeeded"
    assert resumed.step("flush").attempts == 1  # not run again
    assert resumed.version == "20261102T020000Z"  # the run's own clock, not today's
    assert "published 20261102T020000Z" in str(resumed.result("notify", "message"))
    with pytest.raises(RunNotFound, match="nothing to resume"):
        resumable(lake)


def test_a_run_resumed_an_hour_late_curates_the_events_that_arrived_meanwhile(
    shop: tuple[LocalLake, PipelineSettings],
) -> None:
    """Before: the resumed ETL ran on the run's clock, so events newer than it plus 5 minutes
    were quarantined as "in the future" and their raw objects marked processed."""
    lake, settings = shop
    started = datetime.now(UTC) - timedelta(hours=1)
    with lake.lock("etl", lease_s=60), pytest.raises(PipelineFailed, match="step etl failed"):
        run_pipeline(lake, settings, now=started, sleep=lambda _s: None)
    # The hour goes by: a shopper's events reach the raw zone, as Firehose delivers them.
    sink = make_sink(settings)
    late = [
        Event.model_validate({"userId": "U-late", "itemId": f"I{n}", "event_type": "view"})
        for n in range(5)
    ]
    assert sink.put(late) == 5
    assert isinstance(sink, LocalSink)
    sink.flush()
    sink.close()

    resumed = run_pipeline(lake, settings, resume=True, sleep=lambda _s: None)
    assert resumed.status == "succeeded"
    assert resumed.result("etl", "quarantined") == 0
    assert not list(lake.list("quarantine/"))
    curated = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{lake.root}/curated/interactions/*/*.parquet') "
        "WHERE user_id = 'U-late'"
    ).fetchall()
    assert curated == [(5,)]


def test_a_running_record_whose_runner_holds_no_lock_shows_as_killed(
    shop: tuple[LocalLake, PipelineSettings],
) -> None:
    lake, settings = shop
    local = start_run(lake, settings, NOW)
    assert shown_status(lake, local) == "killed"  # nobody runs it: its runner died
    with lake.lock(PIPELINE_LOCK, lease_s=60):
        assert shown_status(lake, local) == "running"
    remote = start_run(lake, settings, NOW, "state machine")
    assert shown_status(lake, remote) == "running"  # Step Functions holds no lock
    assert RunRecord.load(lake, remote.run_id).runner == "state machine"


def test_a_run_record_survives_the_round_trip(shop: tuple[LocalLake, PipelineSettings]) -> None:
    lake, settings = shop
    record = run_pipeline(lake, settings, now=NOW)
    again = RunRecord.load(lake, record.run_id)
    assert again == record
    assert summary(again).endswith("it is in production now.")


def test_schedule_runs_at_the_time_of_day_in_utc() -> None:
    assert next_run(datetime(2026, 11, 2, 1, 59, tzinfo=UTC), "02:00") == datetime(
        2026, 11, 2, 2, tzinfo=UTC
    )
    assert next_run(datetime(2026, 11, 2, 2, 0, tzinfo=UTC), "02:00") == datetime(
        2026, 11, 3, 2, tzinfo=UTC
    )
    clock = [datetime(2026, 11, 2, 1, 0, tzinfo=UTC)]
    ran: list[datetime] = []

    def sleep(seconds: float) -> None:
        clock[0] = clock[0] + timedelta(seconds=seconds)

    schedule("02:00", lambda: ran.append(clock[0]), nights=2, clock=lambda: clock[0], sleep=sleep)
    assert ran == [datetime(2026, 11, 2, 2, tzinfo=UTC), datetime(2026, 11, 3, 2, tzinfo=UTC)]


def test_the_weekly_full_history_run_trains_on_everything_whatever_the_window(
    shop: tuple[LocalLake, PipelineSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state machine's input says it (the weekly schedule's); the run record keeps it
    for the train step, which then ignores RECS_TRAIN_WINDOW_DAYS."""
    from orchestration.handler import handler
    from orchestration.steps import STEPS as ALL
    from orchestration.steps import Context
    from training import trainer as trainers

    lake, settings = shop
    monkeypatch.setenv("RECS_LAKE", settings.lake)
    monkeypatch.setenv("RECS_STORE", settings.store)
    monkeypatch.setenv("RECS_TRAIN_WINDOW_DAYS", "7")
    started = handler({"step": "start", "input": {"now": "2026-11-02T03:00:00Z",
                                                   "full_history": True}})  # fmt: skip
    record = RunRecord.load(lake, started["run_id"])
    assert record.full_history
    nightly = start_run(lake, PipelineSettings.from_env(), NOW)
    assert not nightly.full_history

    used: list[int | None] = []
    monkeypatch.setattr(
        trainers.LocalTrainer, "train",
        lambda self, *_a, **_k: used.append(self.window_days) or trainers.Trained("v", "x"),
    )  # fmt: skip
    train = next(s for s in ALL if s.name == "train")
    for run in (record, nightly):
        train.run(Context(lake, PipelineSettings.from_env(), run, lambda _line: None))
    assert used == [None, 7]


def test_a_night_with_nothing_new_skips_training_and_force_trains_anyway(
    shop: tuple[LocalLake, PipelineSettings],
) -> None:
    """Issue 27, item 8: such a night used to retrain and print "0.0000 does not beat
    popularity-count's 0.0000". Now train, evaluate, gate and publish say why they were
    skipped, and the run succeeds; `--force` (the state machine's `force_train`) trains."""
    lake, settings = shop
    first = run_pipeline(lake, settings, now=NOW)
    assert first.step("publish").status == "succeeded"
    quiet = run_pipeline(lake, settings, now=NOW + timedelta(days=1))
    assert quiet.status == "succeeded"
    skipped = {s.name: s.result.get("reason", "") for s in quiet.steps if s.status == "skipped"}
    assert set(skipped) >= {"train", "evaluate", "gate", "publish"}
    assert f"nothing new since production's version {first.version}" in skipped["train"]
    assert "`recs pipeline run --force` trains anyway" in skipped["train"]
    assert quiet.version is None
    assert "nothing new since production's version" in summary(quiet)
    forced = run_pipeline(lake, settings, now=NOW + timedelta(days=1), force_train=True)
    assert forced.step("train").status == "succeeded"
    assert forced.version is not None
    assert forced.version != first.version

    # New events make the next night train again.
    sink = make_sink(settings)
    assert isinstance(sink, LocalSink)
    sink.put([Event(user_id="U1", item_id="I1", event_type="view", ts=NOW)])
    sink.close()
    again = run_pipeline(lake, settings, now=NOW + timedelta(days=2))
    assert again.step("train").status == "succeeded"


def test_a_night_during_an_experiment_trains_and_leaves_publishing_for_after_it(
    shop: tuple[LocalLake, PipelineSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.experiment_control import start
    from training.pipeline import TrainOptions, train

    lake, settings = shop
    first = run_pipeline(lake, settings, now=NOW)
    # Tonight's gate approves, as it would with a week of new shoppers to judge on.
    import training.versions

    described = training.versions.describe
    monkeypatch.setattr(
        training.versions,
        "describe",
        lambda *args: dataclasses.replace(described(*args), state="approved"),
    )
    candidate = train(lake, TrainOptions(seed=9), now=NOW + timedelta(hours=1)).version
    store = settings.publishing_store(lake)
    start(lake, store, candidate, share=0.1, now=NOW + timedelta(hours=1))
    night = run_pipeline(lake, settings, now=NOW + timedelta(days=1), force_train=True)
    assert night.status == "succeeded"
    assert night.step("gate").result["outcome"] == "approved"
    publish = night.step("publish")
    assert publish.status == "skipped"
    assert "would change its control arm under it" in publish.result["reason"]
    assert store.active_version() == first.version
    assert "would change its control arm" in summary(night)
