"""The learned second stage: gradient-boosted trees that reorder the blend's candidates.

The blend (`training.blend`) proposes each user's candidates (the recipe's best new items,
the user's own items, what is trending) and scores them by four weighted components. Where
validation shows, beyond noise, that it pays, a LightGBM lambdarank model (trained in
`training.learned`) reorders the same candidates from richer features: the four components
and their blend, whether and how often the user touched the item, how long ago, and how
widely and how recently the item is touched and rebought.

numpy only: serving evaluates the trees itself, and its Lambda package carries neither
LightGBM nor scipy. The trees are plain arrays (`Trees.arrays`), saved with the version; a
test holds `Trees.raw` to LightGBM's own prediction. Every feature comes from what both
paths hold: the blend's components, the user's history entries, and item statistics
computed from the version's history at its newest event (`item_stats`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]
Float64s = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

FEATURES: Final = (
    "collab",
    "own",
    "recency",
    "trending",
    "blend",
    "seen",
    "purchased",
    "days since the user touched it",
    "user's count of it",
    "users who touched it",
    "users who touched it, halving every 30 days",
    "users who touched it, halving every 7 days",
    "share of its users who came back to it",
    "user's items",
    "user's events",
    "days since the user's newest event",
)
DAY_MS: Final = 86_400_000
#: What "days since" reads for an item the user never touched.
NEVER: Final = 9999.0
ITEM_HALF_LIVES: Final = (30.0, 7.0)
#: The blend's best candidates per user that the ranker reorders (twice the batch rows'
#: 25): scoring a shortlist rather than all of a user's ~200 candidates keeps the batch
#: output at scale to a quarter of the trees' work.
SHORTLIST: Final = 50
#: Rows evaluated at once: a block's (rows x trees) node table stays a few tens of MB.
_ROWS: Final = 20_000


def item_stats(items: Ints, counts: Floats, last_ms: Ints, n_items: int, now_ms: int) -> Float64s:
    """Each item's statistics (n_items x 4) from history entries, one per (user, item): the
    users who touched it, the same halving every 30 and 7 days since their last touch, and
    the share of them who touched it more than once."""
    users = np.bincount(items, minlength=n_items).astype(np.float64)
    age_days = np.maximum(0, now_ms - last_ms) / DAY_MS
    recent = [
        np.bincount(items, weights=np.exp2(-age_days / half_life), minlength=n_items)
        for half_life in ITEM_HALF_LIVES
    ]
    again = np.bincount(items, weights=(counts > 1).astype(np.float64), minlength=n_items)
    return np.stack([users, *recent, again / np.maximum(users, 1.0)], axis=1)


def table(
    components: Float64s,
    weights: tuple[float, float, float, float],
    seen: npt.NDArray[np.bool_],
    purchased: npt.NDArray[np.bool_],
    age_days: Float64s,
    count: Float64s,
    items: Ints,
    stats: Float64s,
    user: Float64s,
) -> Floats:
    """The feature table (`FEATURES`, in order) of n candidates: their four components
    (n x 4), whether the user touched and bought each, days since the touch (any value where
    not seen), the user's count, the item codes, `item_stats`, and each candidate's user's
    (items, events, days since newest event) (n x 3)."""
    blend = components @ np.asarray(weights, np.float64)
    days = np.where(seen, age_days, NEVER)
    return np.column_stack(
        [
            components,
            blend,
            seen.astype(np.float64),
            purchased.astype(np.float64),
            days,
            np.where(seen, count, 0.0),
            stats[items],
            user,
        ]
    ).astype(np.float32)


def user_row(counts: Floats, last_ms: Ints, now_ms: int) -> Float64s:
    """One user's (items, events, days since newest event) from their history entries."""
    if not len(counts):
        return np.array([0.0, 0.0, NEVER])
    idle = max(0, now_ms - int(last_ms.max())) / DAY_MS
    return np.array([float(len(counts)), float(counts.astype(np.float64).sum()), idle])


def squash(raw: Float64s) -> Floats:
    """Raw tree sums as positive scores that keep their order, as both paths show them."""
    return (1.0 / (1.0 + np.exp(-raw))).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Trees:
    """A tree ensemble as flat node arrays: node i splits on `feature[i]` (-1 at a leaf),
    going to `left[i]` when the value is at most `threshold[i]`, else `right[i]`; a leaf's
    output is `value[i]`. `roots` holds each tree's first node."""

    feature: npt.NDArray[np.int32]
    threshold: Float64s
    left: npt.NDArray[np.int32]
    right: npt.NDArray[np.int32]
    value: Float64s
    roots: npt.NDArray[np.int32]
    #: LightGBM's own text of the same trees, where training made them: the batch output
    #: scores millions of rows, which LightGBM's compiled predictor does many times faster
    #: (a test holds the two to the same sums). Not saved: serving has no LightGBM.
    text: str | None = field(default=None, compare=False, repr=False)

    def raw(self, rows: Floats) -> Float64s:
        """Each row's sum of tree outputs: by LightGBM where training holds its text, else
        by `walk`."""
        if self.text is None:
            return self.walk(rows)
        return np.asarray(
            self._booster.predict(np.asarray(rows, np.float32), raw_score=True, num_threads=2),
            dtype=np.float64,
        )

    @functools.cached_property
    def _booster(self) -> Any:
        import lightgbm

        return lightgbm.Booster(model_str=self.text)

    def walk(self, rows: Floats) -> Float64s:
        """Each row's sum of tree outputs, tree after tree in float64, as LightGBM sums them.

        Every tree steps down one level at a time for a block of rows at once, so the
        Python loop runs as many times as the deepest tree is deep, not once per tree."""
        x = np.asarray(rows, np.float64)
        total = np.zeros(len(x), dtype=np.float64)
        if not len(self.roots):
            return total
        for start in range(0, len(x), _ROWS):
            part = x[start : start + _ROWS]
            node = np.repeat(self.roots[None, :], len(part), axis=0)
            row = np.repeat(np.arange(len(part))[:, None], len(self.roots), axis=1)
            inner = self.feature[node] >= 0
            while inner.any():
                here = node[inner]
                go_left = part[row[inner], self.feature[here]] <= self.threshold[here]
                node[inner] = np.where(go_left, self.left[here], self.right[here])
                inner = self.feature[node] >= 0
            # cumsum adds along each row in order: tree after tree, as LightGBM does.
            total[start : start + len(part)] = np.cumsum(self.value[node], axis=1)[:, -1]
        return total

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """What `ranker.npz` holds."""
        return {
            "feature": self.feature,
            "threshold": self.threshold,
            "left": self.left,
            "right": self.right,
            "value": self.value,
            "roots": self.roots,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[Any]]) -> Trees:
        """Back from `ranker.npz`."""
        return cls(
            feature=np.asarray(arrays["feature"], np.int32),
            threshold=np.asarray(arrays["threshold"], np.float64),
            left=np.asarray(arrays["left"], np.int32),
            right=np.asarray(arrays["right"], np.int32),
            value=np.asarray(arrays["value"], np.float64),
            roots=np.asarray(arrays["roots"], np.int32),
        )

    @classmethod
    def from_dump(cls, dump: dict[str, Any], text: str | None = None) -> Trees:
        """From LightGBM's `Booster.dump_model()` (numerical splits, `<=`, no missing values:
        training sets `use_missing` off, and no feature is ever NaN)."""
        feature: list[int] = []
        threshold: list[float] = []
        left: list[int] = []
        right: list[int] = []
        value: list[float] = []
        roots: list[int] = []

        def add(node: dict[str, Any]) -> int:
            at = len(feature)
            feature.append(-1)
            threshold.append(0.0)
            left.append(-1)
            right.append(-1)
            value.append(float(node.get("leaf_value", 0.0)))
            if "split_feature" in node:
                if node.get("decision_type", "<=") != "<=":
                    raise ValueError(f"unsupported split {node.get('decision_type')!r}")
                feature[at] = int(node["split_feature"])
                threshold[at] = float(node["threshold"])
                left[at] = add(node["left_child"])
                right[at] = add(node["right_child"])
            return at

        for tree in dump["tree_info"]:
            roots.append(add(tree["tree_structure"]))
        return cls(
            feature=np.array(feature, np.int32),
            threshold=np.array(threshold, np.float64),
            left=np.array(left, np.int32),
            right=np.array(right, np.int32),
            value=np.array(value, np.float64),
            roots=np.array(roots, np.int32),
            text=text,
        )
