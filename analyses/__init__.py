"""The three papers' experiments as configurable analyses (`featurebias run NAME`).

Each analysis is a module with a `Config` dataclass (defaults that run in minutes on a CPU,
fields that scale it to the papers' settings) and `run(config, *, progress=True) -> Report`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from featurebias.errors import ConfigError

ANALYSES = {
    "demo": "the embedded main job: all three papers at small sizes, one report",
    "erasure_learning_speed": "paper 1: how erasing simple features slows learning",
    "representation_bias": "paper 2: easy features take the representation's variance",
    "iterative_linearisation": "paper 3: how often must features change (linearise every K)",
}


def get(name: str) -> ModuleType:
    """The analysis module `name`, or a `ConfigError` listing the known ones."""
    if name not in ANALYSES:
        raise ConfigError(f"unknown analysis {name!r}; expected one of {sorted(ANALYSES)}")
    return importlib.import_module(f"{__name__}.{name}")
