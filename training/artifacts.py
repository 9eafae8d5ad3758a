"""Where model versions and their batch output live in the lake, and `.npz` I/O (no pickle).

numpy only: serving reads published versions through this module, and its package may not
carry scipy, pandas or pyarrow.
"""

from __future__ import annotations

import io
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
