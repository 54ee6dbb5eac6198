"""The demo notebooks: committed clean, and each runs top to bottom, draws figures, and is quick.

Each notebook runs in a fresh Jupyter kernel (nbclient) whose working directory is a temporary
folder, with the Agg backend in the environment; the notebooks select the inline backend
themselves, which is what puts their figures into the outputs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

FOLDER = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
EXPECTED = [
    "01_probing_activations.ipynb",
    "02_erasing_features_at_layers.ipynb",
    "03_representation_bias_plots.ipynb",
]
# Each notebook takes 25-45 s (kernel start included) on a shared, loaded 2-core machine. The
# bound leaves room for a busier machine and catches a notebook that has grown several-fold.
TIME_LIMIT_S = 180.0
CELL_TIMEOUT_S = 600

ids = [path.stem for path in NOTEBOOKS]


def test_every_demo_notebook_is_there():
    assert [path.name for path in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    markdown = [cell for cell in nb.cells if cell.cell_type == "markdown"]
    assert code and markdown, "a demo notebook has code and narration"
    assert len(nb.cells) <= 25, "demo notebooks stay short"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, (
            f"cell {cell.id} of {path.name} has outputs; clear them before committing")
        assert "execution" not in cell.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_runs_and_draws(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    # One extra cell, in memory only: which Python the kernel runs.
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    before = sorted(p.name for p in FOLDER.iterdir())
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    elapsed = time.perf_counter() - start

    kernel_python = "".join(o.get("text", "") for o in nb.cells[-1].outputs).strip()
    assert os.path.samefile(kernel_python, sys.executable), (
        f"the kernel ran {kernel_python}, not this environment's {sys.executable}")
    images = [output for cell in nb.cells if cell.cell_type == "code"
              for output in cell.outputs if "image/png" in output.get("data", {})]
    assert images, f"{path.name} displayed no figure"
    assert elapsed < TIME_LIMIT_S, f"{path.name} took {elapsed:.0f} s (limit {TIME_LIMIT_S:.0f} s)"
    assert sorted(p.name for p in FOLDER.iterdir()) == before, "the notebook wrote into the repo"
