"""An experiment's outcome: the intervals against published answers, and each arm's counts
read back from events that went through the real ETL."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from common.lake import LocalLake
from etl.job import run_etl
from ingestion.raw import event_object_key, gzip_bytes
from orchestration.outcomes import Arm, judged, newcombe, outcome, wilson
from serving.experiment import Experiment, recommendation_id

START = datetime(2026, 11, 2, tzinfo=UTC)


def test_the_intervals_match_newcombes_worked_examples() -> None:
    # Newcombe (1998), Statistics in Medicine 17: 873-890, tables I and II.
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    low, high = wilson(0, 10)
    assert (round(low, 4), round(high, 4)) == (0.0, 0.2775)
    low, high = newcombe(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    low, high = newcombe(9, 10, 3, 10)
    assert (round(low, 4), round(high, 4)) == (0.1705, 0.8090)


def _experiment(**changes: object) -> Experiment:
    base = Experiment("exp-1", "v2", "v1", 0.5, "2026-11-02T00:00:00.000Z")
    return Experiment.of({**base.body(), **changes})


@pytest.mark.parametrize(
    ("control", "candidate", "days", "verdict"),
    [
        (Arm("v1", 0, 0, 0), Arm("v2", 10, 5, 1), 9.0, "no-shoppers"),
        (Arm("v1", 1000, 100, 10), Arm("v2", 1000, 200, 20), 3.0, "too-early"),
        (Arm("v1", 1000, 100, 10), Arm("v2", 1000, 200, 20), 7.0, "candidate-wins"),
        (Arm("v1", 1000, 200, 20), Arm("v2", 1000, 100, 10), 7.0, "candidate-loses"),
        (Arm("v1", 1000, 100, 10), Arm("v2", 1000, 110, 11), 7.0, "not-clear"),
    ],
)
def test_a_difference_is_clear_only_outside_its_interval_after_the_minimum_days(
    control: Arm, candidate: Arm, days: float, verdict: str
) -> None:
    found = judged(_experiment(), control, candidate, days)
    assert found.verdict == verdict
    assert found.won == (verdict == "candidate-wins")
    assert found.says.split(":")[0] in {
        "too early to call",
        "not clear",
        "clear",
        "no shopper of either arm has an event since the experiment started yet",
    }


def test_a_win_that_costs_conversion_clearly_is_no_win() -> None:
    control, candidate = Arm("v1", 2000, 200, 200), Arm("v2", 2000, 400, 100)
    found = judged(_experiment(), control, candidate, 8.0)
    assert found.verdict == "candidate-wins"
    assert not found.won


def test_each_arms_shoppers_clicks_and_purchases_come_from_the_curated_events(
    local_lake: LocalLake,
) -> None:
    experiment = _experiment(share=0.3)
    rng = random.Random(3)
    events: list[dict[str, Any]] = []
    clicks: dict[str, bool] = {}
    buys: dict[str, bool] = {}
    carts: dict[str, bool] = {}
    for n in range(400):
        user = f"U{n}"
        arm = experiment.assigned(user)
        version = experiment.candidate if arm else experiment.control
        ts = START + timedelta(hours=1 + n % 100)
        clicks[user] = rng.random() < (0.5 if arm else 0.3)
        buys[user] = clicks[user] and rng.random() < 0.4
        carts[user] = clicks[user] and rng.random() < 0.5
        row = {"user_id": user, "item_id": f"I{n % 30}", "event_type": "view", "ts": ts}
        if clicks[user]:
            row["recommendation_id"] = recommendation_id(version)
        events.append(row)
        if buys[user]:  # the purchase itself carries no id: it is reached through the click
            events.append({**row, "event_type": "purchase", "ts": ts + timedelta(minutes=5)})
            events[-1].pop("recommendation_id")
        if carts[user]:
            events.append({**row, "event_type": "add_to_cart", "ts": ts + timedelta(minutes=2)})
            events[-1].pop("recommendation_id")
    # What must not count: an event before the start, another version's id, and a purchase
    # of an item reached only after it was bought (U3's late click counts as a click, if
    # it is of U3's own arm's version).
    late = START + timedelta(hours=200)
    events += [
        {
            "user_id": "U1",
            "item_id": "I1",
            "event_type": "view",
            "ts": START - timedelta(days=1),
            "recommendation_id": recommendation_id("v2"),
        },
        {
            "user_id": "U2",
            "item_id": "I2",
            "event_type": "view",
            "ts": late,
            "recommendation_id": recommendation_id("v0"),
        },
        {"user_id": "U3", "item_id": "I99", "event_type": "purchase", "ts": late},
        {
            "user_id": "U3",
            "item_id": "I99",
            "event_type": "view",
            "ts": late + timedelta(hours=1),
            "recommendation_id": recommendation_id("v1"),
        },
    ]
    clicks["U3"] = clicks["U3"] or not experiment.assigned("U3")
    expected = {
        arm: [
            sum(1 for u in clicks if experiment.assigned(u) == arm),
            sum(clicks[u] for u in clicks if experiment.assigned(u) == arm),
            sum(buys[u] for u in buys if experiment.assigned(u) == arm),
            sum(carts[u] for u in carts if experiment.assigned(u) == arm),
        ]
        for arm in (False, True)
    }
    lines = []
    for number, event in enumerate(events):
        ts = event["ts"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
        lines.append(json.dumps({**event, "ts": ts, "event_id": f"e{number}"}).encode())
    key = event_object_key("firehose", START, "experiment")
    local_lake.write_bytes(key, gzip_bytes(b"\n".join(lines) + b"\n"))
    run_etl(local_lake, now=START + timedelta(days=9))

    found = outcome(local_lake, experiment, now=START + timedelta(days=9))
    got = {
        arm: [found_arm.shoppers, found_arm.clicked, found_arm.bought, found_arm.carted]
        for arm, found_arm in ((False, found.control), (True, found.candidate))
    }
    assert got == expected
    assert all(counts[3] > 0 for counts in got.values())  # carts were counted in both arms
    assert found.days == 9.0
    assert found.verdict in {"candidate-wins", "not-clear"}
    body = found.body()
    assert set(body["arms"]) == {"control", "candidate"}
    assert (
        body["differences"]["click-through"]["interval"][0]
        < body["differences"]["click-through"]["estimate"]
    )


def test_an_empty_lake_has_no_shoppers_yet(local_lake: LocalLake) -> None:
    found = outcome(local_lake, _experiment(), now=START + timedelta(days=1))
    assert found.verdict == "no-shoppers"
    assert found.control.shoppers == found.candidate.shoppers == 0


def test_between_two_equal_arms_a_clear_difference_is_as_rare_as_the_interval_promises() -> None:
    """An A/A test: 2,000 experiments whose arms are the same. About 5% may be called clear
    (a 95% interval), and no more; and a real 3-point difference over 1,500 shoppers an arm
    is found as often as a normal approximation says it should (power 0.73)."""
    rng = np.random.default_rng(11)

    def called(p_control: float, p_candidate: float, n: int = 1500) -> float:
        clear = 0
        controls = rng.binomial(n, p_control, 2000)
        for a, b in zip(controls, rng.binomial(n, p_candidate, 2000), strict=True):
            found = judged(_experiment(), Arm("v1", n, int(a), 0), Arm("v2", n, int(b), 0), 8.0)
            clear += found.verdict in {"candidate-wins", "candidate-loses"}
        return clear / 2000

    assert 0.035 < called(0.1, 0.1) < 0.065
    assert 0.65 < called(0.1, 0.13) < 0.81
