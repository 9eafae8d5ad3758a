"""An experiment's outcome, read from the curated events: each arm's click-through, carts and
conversion, with intervals, and whether the difference is clear.

Who is in which arm is the hash `serving.experiment` answers by, so no impression is logged:
an arm's shoppers are those the hash puts there who had any event while the experiment ran
(intention to treat: a shopper counts whether or not they ever saw a recommendation, so both
arms are counted alike). Of them:

- **click-through**: the share with an event carrying a recommendationId of the arm's
  version (they acted on one of its recommendations);
- **add-to-cart**: the share who added to the cart an item they had reached through one (an
  add_to_cart whose item has an earlier or same-time event of theirs with such an id);
- **conversion**: the share who bought an item they had reached through one, alike.

Each rate has a Wilson score interval, and the difference (candidate minus control)
Newcombe's hybrid score interval (Newcombe 1998, method 10), 95% both. A difference is
"clear" once the interval leaves out 0 and the experiment has run its `min_days`: looking
every day at an interval that is only right for one look would call noise a win.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any, Final, Literal

from common.lake import Lake
from serving.experiment import Experiment

#: Two-sided 95%.
Z: Final = NormalDist().inv_cdf(0.975)
#: What each arm's shoppers are counted for; an experiment is decided on one of `METRICS`.
OUTCOMES: Final = ("click-through", "add-to-cart", "conversion")
Verdict = Literal["no-shoppers", "too-early", "not-clear", "candidate-wins", "candidate-loses"]


def wilson(hits: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson's score interval of a proportion `hits / n` ((0, 1) when n is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    scale = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(hits_a: int, n_a: int, hits_b: int, n_b: int, z: float = Z) -> tuple[float, float]:
    """Newcombe's hybrid score interval of the difference `hits_a/n_a - hits_b/n_b`."""
    p_a, p_b = hits_a / max(n_a, 1), hits_b / max(n_b, 1)
    low_a, high_a = wilson(hits_a, n_a, z)
    low_b, high_b = wilson(hits_b, n_b, z)
    d = p_a - p_b
    return (
        d - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2),
        d + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2),
    )


@dataclass(frozen=True)
class Arm:
    """One arm's shoppers and what they did."""

    version: str
    shoppers: int
    clicked: int
    bought: int
    carted: int = 0

    def rate(self, metric: str) -> float:
        """Click-through, add-to-cart or conversion."""
        return self.hits(metric) / self.shoppers if self.shoppers else 0.0

    def interval(self, metric: str) -> tuple[float, float]:
        return wilson(self.hits(metric), self.shoppers)

    def hits(self, metric: str) -> int:
        """The arm's shoppers who did what the metric counts."""
        return {"click-through": self.clicked, "add-to-cart": self.carted}.get(metric, self.bought)

    def body(self) -> dict[str, Any]:
        """As the ops page and `status --json` show it."""
        return {
            **asdict(self),
            **{
                metric: {
                    "rate": round(self.rate(metric), 6),
                    "interval": [round(x, 6) for x in self.interval(metric)],
                }
                for metric in OUTCOMES
            },
        }


@dataclass(frozen=True)
class Outcome:
    """Where an experiment stands."""

    experiment: Experiment
    control: Arm
    candidate: Arm
    days: float
    #: Per metric: the candidate's rate minus the control's, and its interval.
    differences: dict[str, tuple[float, float, float]]
    verdict: Verdict

    @property
    def says(self) -> str:
        """The verdict in a sentence."""
        metric, e = self.experiment.metric, self.experiment
        d, low, high = self.differences[metric]
        diff = (
            f"{metric} {100 * d:+.2f} points (95% interval {100 * low:+.2f} to {100 * high:+.2f})"
        )
        if self.verdict == "no-shoppers":
            return "no shopper of either arm has an event since the experiment started yet"
        if self.verdict == "too-early":
            return f"too early to call: day {self.days:.1f} of {e.min_days}; so far {diff}"
        if self.verdict == "not-clear":
            return f"not clear: {diff} includes no difference; let it run longer"
        won = "wins" if self.verdict == "candidate-wins" else "loses"
        return f"clear: the candidate {e.candidate} {won} on {diff}"

    @property
    def won(self) -> bool:
        """The candidate won on the experiment's metric and is not clearly worse on the
        others: what `stop --promote` asks before it publishes."""
        others = [m for m in OUTCOMES if m != self.experiment.metric]
        return self.verdict == "candidate-wins" and all(self.differences[m][2] >= 0 for m in others)

    def body(self) -> dict[str, Any]:
        """As the ops page, the lake's record and `status --json` show it."""
        return {
            "experiment": self.experiment.body(),
            "days": round(self.days, 2),
            "arms": {"control": self.control.body(), "candidate": self.candidate.body()},
            "differences": {
                m: {"estimate": round(d, 6), "interval": [round(low, 6), round(high, 6)]}
                for m, (d, low, high) in self.differences.items()
            },
            "verdict": self.verdict,
            "says": self.says,
            "won": self.won,
        }


#: Per shopper active while the experiment ran: whether they acted on a recommendation of
#: each version, and bought, or added to the cart, an item they reached through one. DuckDB
#: over `etl.sql`'s views.
SHOPPERS_SQL: Final = """
WITH e AS (
    SELECT user_id, item_id, event_type, ts,
           CASE WHEN strpos(recommendation_id, '@') > 0
                THEN regexp_extract(recommendation_id, '@([^@]*)$', 1) END AS version
    FROM interactions
    WHERE event_date >= CAST($since AS DATE) AND ts >= $since AND ts < $until
),
reached AS (
    SELECT user_id, item_id, version, min(ts) AS first_ts
    FROM e WHERE version IN ($control, $candidate) GROUP BY 1, 2, 3
),
followed AS (
    SELECT DISTINCT p.user_id, p.event_type, r.version
    FROM e p JOIN reached r
      ON p.user_id = r.user_id AND p.item_id = r.item_id AND r.first_ts <= p.ts
    WHERE p.event_type IN ('purchase', 'add_to_cart')
)
SELECT e.user_id,
       bool_or(e.version = $control) IS TRUE AS clicked_control,
       bool_or(e.version = $candidate) IS TRUE AS clicked_candidate,
       bool_or(f.event_type = 'purchase' AND f.version = $control) IS TRUE AS bought_control,
       bool_or(f.event_type = 'purchase' AND f.version = $candidate) IS TRUE
           AS bought_candidate,
       bool_or(f.event_type = 'add_to_cart' AND f.version = $control) IS TRUE
           AS carted_control,
       bool_or(f.event_type = 'add_to_cart' AND f.version = $candidate) IS TRUE
           AS carted_candidate
FROM e LEFT JOIN followed f ON f.user_id = e.user_id
GROUP BY 1
"""


def outcome(lake: Lake, experiment: Experiment, *, now: datetime | None = None) -> Outcome:
    """The experiment's outcome so far (until it stopped), from the curated interactions."""
    from etl.errors import CuratedZoneEmpty
    from etl.sql import connect

    clock = now or datetime.now(UTC)
    until = datetime.fromisoformat(experiment.stopped_at) if experiment.stopped_at else clock
    # By candidate arm or not: shoppers, clicked, bought, carted.
    counts = {True: [0, 0, 0, 0], False: [0, 0, 0, 0]}
    try:
        con = connect(lake)
    except CuratedZoneEmpty:
        con = None
    if con is not None:
        try:
            cursor = con.execute(
                SHOPPERS_SQL,
                {
                    "since": datetime.fromisoformat(experiment.started_at),
                    "until": until,
                    "control": experiment.control,
                    "candidate": experiment.candidate,
                },
            )
            while batch := cursor.fetchmany(10_000):
                for user, *flags in batch:
                    arm = experiment.assigned(user)
                    found = counts[arm]
                    found[0] += 1
                    for at, did in enumerate(flags[1::2] if arm else flags[::2], start=1):
                        found[at] += did
        finally:
            con.close()
    control = Arm(experiment.control, *counts[False])
    candidate = Arm(experiment.candidate, *counts[True])
    return judged(experiment, control, candidate, experiment.days(clock))


def judged(experiment: Experiment, control: Arm, candidate: Arm, days: float) -> Outcome:
    """The arms' differences and the verdict."""
    differences = {}
    for metric in OUTCOMES:
        low, high = newcombe(
            candidate.hits(metric), candidate.shoppers, control.hits(metric), control.shoppers
        )
        differences[metric] = (candidate.rate(metric) - control.rate(metric), low, high)
    _, low, high = differences[experiment.metric]
    verdict: Verdict
    if not control.shoppers or not candidate.shoppers:
        verdict = "no-shoppers"
    elif days < experiment.min_days:
        verdict = "too-early"
    elif low > 0:
        verdict = "candidate-wins"
    elif high < 0:
        verdict = "candidate-loses"
    else:
        verdict = "not-clear"
    return Outcome(experiment, control, candidate, days, differences, verdict)
