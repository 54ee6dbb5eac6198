"""One launch of three gloo ranks serves every multi-process test (each start costs seconds)."""

from __future__ import annotations

import pytest
import torch

from . import _workers
from ._launch import launch


@pytest.fixture(scope="session")
def ranks(tmp_path_factory) -> list[dict]:
    """Every rank's results of `_workers.everything` (3 ranks, training on the first 2)."""
    folder = tmp_path_factory.mktemp("ranks")
    return launch(_workers.everything, 3, str(folder))


@pytest.fixture(autouse=True)
def one_thread():
    # The problems are tiny and the machine is shared.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
