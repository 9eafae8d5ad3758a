"""The experiments benchmark's replay, on a small generated shop: both arms get shoppers, the
clicks it posts back come through the ETL to the outcome, and the offline figures sit beside."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.datasets import data_sets
from benchmarks.experiments import _replayed


@pytest.mark.slow  # trains two versions; the path it replays is tested in tests/serving
def test_a_replayed_experiment_counts_both_arms_from_the_posted_back_clicks(
    tmp_path: Path,
) -> None:
    sets, _ = data_sets(20_000, tmp_path / "no-real-sets")
    (shop,) = sets
    result = _replayed(shop, tmp_path)
    arms = result["arms"]
    assert arms["control"]["shoppers"] > 100
    assert arms["candidate"]["shoppers"] > 100
    assert 0 < arms["control"]["clicked"] <= arms["control"]["shoppers"]
    assert 0 < arms["candidate"]["clicked"] <= arms["candidate"]["shoppers"]
    assert result["experiment"]["candidate"] == arms["candidate"]["version"]
    assert result["offline"]["candidate recipe"].startswith("als")
    assert 0 < result["offline"]["control"] < 1
