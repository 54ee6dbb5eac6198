"""One torch thread per training test: the models are tiny."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # A second thread only adds synchronisation on problems this small, and the machine is
    # shared.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
