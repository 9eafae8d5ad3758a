"""A server worker (`recs serve`'s, or the Lambda's) runs one BLAS thread: per-request linear
algebra on more threads fights the event loop and the other workers for the cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Builds a worker the way each entry point does, after numpy loaded OpenBLAS with the
#: machine's default threads, then loads what a model brings in, and reports the pools.
SCRIPT = """
import json, sys
import numpy
if sys.argv[1] == "server":
    from serving.server import create_app
    create_app()
else:
    from serving.handler import _handler
    _handler()
import scipy.linalg, implicit.cpu.als  # what loading a version brings in
from threadpoolctl import threadpool_info
pools = [{"api": p["internal_api"], "threads": p["num_threads"]} for p in threadpool_info()]
print(json.dumps(pools))
"""


@pytest.mark.parametrize("entry", ["server", "lambda"])
def test_a_worker_runs_one_blas_thread(tmp_path: Path, entry: str) -> None:
    (tmp_path / "lake" / "raw").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECS_", "POWERTOOLS_"))}
    # A four-core machine's defaults, whatever this one has.
    env |= {"OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "4", "RECS_LAKE": "lake"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, entry],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    pools = json.loads(done.stdout.strip().splitlines()[-1])
    assert pools, "no thread pool found: the check would pass for nothing"
    assert all(pool["threads"] == 1 for pool in pools), pools


def test_a_worker_loads_the_published_version_before_it_takes_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the first request after start paid for the model load (2.3 s on a shop of
    64,000 items), though `/v1/health` had already answered."""
    from serving import server
    from serving.services import Services
    from tests.serving_helpers import published_shop

    shop = published_shop(tmp_path / "shop")
    for name, value in {
        "RECS_LAKE": shop.lake,
        "RECS_STORE": shop.store,
        "RECS_EVENT_LOG": tmp_path / "events.sqlite3",
        "RECS_IDEMPOTENCY_STORE": tmp_path / "idempotency.sqlite3",
        "RECS_LOG_FILE": tmp_path / "serve.log",
    }.items():
        monkeypatch.setenv(name, str(value))
    built: list[Services] = []
    original = server.build_services

    def build(*args: object, **kwargs: object) -> Services:
        services = original(*args, **kwargs)  # type: ignore[arg-type]
        built.append(services)
        return services

    monkeypatch.setattr(server, "build_services", build)
    monkeypatch.setattr(server, "configure_logging", lambda path: None)
    server.create_app()
    [services] = built
    try:
        assert services.recommender.live.loaded == shop.version
    finally:
        services.sink.close()
