"""Headless figures, one torch thread, and a clean slate (palette, open figures) per test."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=True)  # the tests only write PNGs; no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from featurebias.plots import reset_palette  # noqa: E402


@pytest.fixture(autouse=True)
def clean_state():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    reset_palette()
    before = set(plt.get_fignums())
    yield
    torch.set_num_threads(threads)
    for num in set(plt.get_fignums()) - before:  # a failing test must not leak figures
        plt.close(num)
