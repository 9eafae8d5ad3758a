"""One BLAS and OpenMP thread per server worker.

A request's linear algebra is small (a user's fold-in is one 128 x 128 solve), and on more
threads it fights the event loop and the other workers for the cores: under load one
realtime answer took 145 ms with two OpenBLAS threads, and 3 ms with one. Each worker, of
`recs serve` or a Lambda instance, is pinned when it starts, and serves in parallel by
running more workers.
"""

from __future__ import annotations

import os
from typing import Final

#: What OpenBLAS, OpenMP and MKL read when they load: for libraries not loaded yet.
VARIABLES: Final = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_thread_per_worker() -> None:
    """Pin this process to one thread in every BLAS and OpenMP pool: those loaded already
    (through threadpoolctl) and those that load later (through their variables), and the
    worker processes it starts."""
    from threadpoolctl import threadpool_limits

    os.environ.update(dict.fromkeys(VARIABLES, "1"))
    threadpool_limits(1)
