"""Every test runs with one torch thread (restored afterwards).

The test problems are small: a second thread only adds synchronisation, which on a shared
2-core machine can cost more than the work itself.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
