"""Settings of `python -m benchmarks`: where the real data sets are."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import Field

from common.settings import RecsSettings

#: ../shared/data beside the project, where the workplace keeps the real sets.
SHARED_DATA: Final = Path(__file__).resolve().parents[2] / "shared" / "data"


class BenchSettings(RecsSettings):
    """What the benchmarks read besides their flags."""

    bench_data: Path = Field(
        SHARED_DATA,
        description="Folder of the real data sets the quality benchmark scores "
        "(online-retail/, movielens-100k/)",
    )
