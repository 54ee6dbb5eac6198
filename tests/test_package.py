"""The top-level namespace: every advertised name resolves; heavy parts load lazily."""

from __future__ import annotations

import subprocess
import sys

import featurebias


def test_every_exported_name_resolves():
    for name in featurebias.__all__:
        assert getattr(featurebias, name) is not None, name


def test_lazy_names_are_the_subpackages_objects():
    import importlib

    for name, module in featurebias._LAZY.items():
        sub = importlib.import_module(f"featurebias.{module}")
        assert getattr(featurebias, name) is getattr(sub, name), name


def test_import_does_not_load_probes_or_features():
    code = ("import sys, featurebias; "
            "print(any(m in sys.modules for m in ('featurebias.probes', 'featurebias.features', "
            "'featurebias.similarity', 'featurebias.training', 'featurebias.datasets')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pyproject_lists_every_subpackage():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    on_disk = {".".join(p.parent.relative_to(root / "toolkit").parts)
               for p in (root / "toolkit").rglob("__init__.py")} | {"featurebias.analyses"}
    assert listed == on_disk
    assert (root / "analyses" / "__init__.py").exists()


def test_subpackages_load_on_attribute_access():
    import importlib

    for name in featurebias._SUBPACKAGES:
        assert getattr(featurebias, name) is importlib.import_module(f"featurebias.{name}")
