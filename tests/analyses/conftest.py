"""Checks every analysis test shares: a seeded run, a written report, linked figures, CLI
overrides."""

from __future__ import annotations

import matplotlib.image as mpimg
import pandas as pd
import pytest
import torch

from featurebias.analyses._config import as_dict


def run_leaving_rng(run, config):
    """`run(config, progress=False)`, asserting the caller's global RNG is left alone."""
    state = torch.random.get_rng_state()
    out = run(config, progress=False)
    # Everything is seeded from the config; the caller's global RNG is left alone.
    assert torch.equal(torch.random.get_rng_state(), state)
    return out


def check_written(report, folder, figures):
    """`report.write(folder)`: every figure a non-blank PNG, every table a CSV that reads back."""
    path = report.write(folder)
    for name in figures:
        image = mpimg.imread(folder / "figures" / f"{name}.png")
        assert image.ndim == 3 and min(image.shape[:2]) > 50, name
        assert float(image[..., :3].std()) > 0.01, f"{name} is blank"
    for name, frame in report.tables.items():
        back = pd.read_csv(folder / "tables" / f"{name}.csv")
        assert list(back.columns) == list(frame.columns) and len(back) == len(frame)
    return path


def check_figures_linked(report, figures):
    """The report draws exactly `figures`, each with axes and linked from the narrative."""
    assert set(report.figures) == figures
    text = report.markdown()
    for name, fig in report.figures.items():
        assert fig.axes, name
        assert f"(figures/{name}.png)" in text, name


def cli_overrides(config) -> list[str]:
    """`--set key=value` arguments that rebuild `config` on the command line."""
    out = []
    for key, value in as_dict(config).items():
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        out += ["--set", f"{key}={text}"]
    return out


@pytest.fixture(scope="session")
def analysis_checks():
    """The helpers above: `.run`, `.written`, `.figures_linked`, `.overrides`."""
    class Checks:
        run = staticmethod(run_leaving_rng)
        written = staticmethod(check_written)
        figures_linked = staticmethod(check_figures_linked)
        overrides = staticmethod(cli_overrides)
    return Checks()
