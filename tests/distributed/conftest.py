"""One launch of three gloo ranks serves every multi-process test (each start costs seconds)."""

from __future__ import annotations

import pytest

from . import _workers
from ._launch import launch


@pytest.fixture(scope="session")
def ranks(tmp_path_factory) -> list[dict]:
    """Every rank's results of `_workers.everything` (3 ranks, training on the first 2)."""
    folder = tmp_path_factory.mktemp("ranks")
    return launch(_workers.everything, 3, str(folder))
