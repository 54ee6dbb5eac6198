"""The whole session runs with one torch thread and one BLAS/OpenMP thread.

The test problems are small: a second thread only adds synchronisation, which on a shared
2-core machine can cost more than the work itself, and with two pytest workers every
multi-threaded product waits for a descheduled thread (module fixtures ran 4-25x slower).
Session scope, so module fixtures are covered too; `make test` also sets the thread
variables, this covers a bare `pytest -n 2`.
"""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)
