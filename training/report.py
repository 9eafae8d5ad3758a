"""The readable report of a training run: a table of every metric and one figure.

`models/<version>/report.md` and `report.png`: NDCG@10 and recall@20 per model (the
popularity baseline always among them), and the item popularity curve, which shows how long
the catalog's tail is and so how much a model must do beyond "what sells".
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from training.metrics import CUTOFFS

_SHOWN: Final = (
    *(f"normalized_discounted_cumulative_gain_at_{k}" for k in CUTOFFS),
    "recall_at_20",
    "mean_reciprocal_rank_at_25",
    "coverage",
)
_SHORT: Final = {
    **{f"normalized_discounted_cumulative_gain_at_{k}": f"NDCG@{k}" for k in CUTOFFS},
    "recall_at_20": "recall@20",
    "mean_reciprocal_rank_at_25": "MRR@25",
    "coverage": "coverage",
}


def figure(
    metrics: Mapping[str, Mapping[str, float]], popularity: npt.NDArray[np.float32]
) -> bytes:
    """PNG: metric per model beside the item popularity curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    names = list(metrics)
    x = np.arange(len(names))
    for offset, key in (
        (-0.2, "normalized_discounted_cumulative_gain_at_10"),
        (0.2, "recall_at_20"),
    ):
        left.bar(x + offset, [metrics[n][key] for n in names], width=0.4, label=_SHORT[key])
    left.set_xticks(x, names, rotation=20, ha="right")
    left.set_title("Holdout metrics per model")
    left.legend()
    counts = np.sort(popularity)[::-1]
    share = np.cumsum(counts) / max(float(counts.sum()), 1e-9)
    right.plot(np.arange(1, len(counts) + 1) / len(counts) * 100, share * 100)
    right.set_xlabel("% of items, most popular first")
    right.set_ylabel("% of weighted interactions")
    right.set_title("Popularity distribution")
    right.grid(alpha=0.3)
    fig.tight_layout()
    sink = io.BytesIO()
    fig.savefig(sink, format="png")
    plt.close(fig)
    return sink.getvalue()


def markdown(
    version: str,
    chosen: str,
    metrics: Mapping[str, Mapping[str, float]],
    gate_reasons: list[str],
    popularity: npt.NDArray[np.float32],
) -> str:
    """The report's text: which model, why, and every metric beside popularity's."""
    counts = np.sort(popularity)[::-1]
    head = max(1, len(counts) // 10)
    head_share = float(counts[:head].sum()) / max(float(counts.sum()), 1e-9)
    lines = [
        f"# Model {version}",
        "",
        f"Chosen: **{chosen}** (best NDCG@10 on the holdout). Gate: {'; '.join(gate_reasons)}.",
        "",
        "| model | " + " | ".join(_SHORT[k] for k in _SHOWN) + " |",
        "|---|" + "---:|" * len(_SHOWN),
    ]
    for name, values in metrics.items():
        mark = f"**{name}**" if name == chosen else name
        lines.append(f"| {mark} | " + " | ".join(f"{values[k]:.4f}" for k in _SHOWN) + " |")
    lines += [
        "",
        f"The most popular 10% of items take {head_share:.0%} of the weighted interactions.",
        "",
        "![metrics and popularity](report.png)",
        "",
    ]
    return "\n".join(lines)
