"""Where model versions and their batch output live in the lake, and `.npz` I/O (no pickle).

numpy only: serving reads published versions through this module, and its package may not
carry scipy, pandas or pyarrow.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from common.lake import Lake

#: The name, in a manifest's `metrics`, of what the version serves (the other entries are the
#: baselines scored beside it).
SERVED: Final = "served"
#: The baseline of a shop of rebuyers: the user's own items, then the most popular.
OWN_HISTORY: Final = "own, then popular"


def npz_bytes(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """Arrays as a compressed `.npz` file."""
    sink = io.BytesIO()
    np.savez_compressed(sink, **arrays)  # type: ignore[arg-type]
    return sink.getvalue()


def load_arrays(lake: Lake, key: str) -> dict[str, npt.NDArray[Any]]:
    """One `.npz` artifact, without pickle."""
    with np.load(io.BytesIO(lake.read_bytes(key)), allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def batch_lines(
    key: str,
    ids: npt.NDArray[np.str_],
    items: npt.NDArray[np.str_],
    best: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
) -> bytes:
    """Lists of item codes as Personalize's batch output: one JSON line per id in `ids`,
    its codes' ids in `items` (-1 ends a list) and their scores."""
    lines = []
    for who, row, row_scores in zip(ids.tolist(), best, scores, strict=True):
        keep = row >= 0
        lines.append(
            json.dumps(
                {
                    "input": {key: who},
                    "output": {
                        "recommendedItems": items[row[keep]].tolist(),
                        "scores": [round(float(s), 6) for s in row_scores[keep]],
                    },
                    "error": None,
                },
                separators=(",", ":"),
            )
        )
    return ("\n".join(lines) + "\n").encode()
