"""Headless figures and a clean slate (palette, open figures) per test."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=True)  # the tests only write PNGs; no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from featurebias.plots import reset_palette  # noqa: E402


@pytest.fixture(autouse=True)
def clean_state():
    reset_palette()
    before = set(plt.get_fignums())
    yield
    for num in set(plt.get_fignums()) - before:  # a failing test must not leak figures
        plt.close(num)
