"""One torch thread per probe test: the problems are small."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # These problems are tiny: a second thread only adds synchronisation, which on a shared
    # machine can cost more than the work itself.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
