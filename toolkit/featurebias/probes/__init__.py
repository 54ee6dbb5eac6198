"""Probes: linear, quadratic and MLP classifiers in torch, probe sweeps, controls and MDL.

The probes follow scikit-learn's estimator API (`fit`, `predict`, `predict_proba`, `score`,
`get_params`, `clone`) and compute in torch, on the device of their input.
"""

from .base import Probe
from .control import Selectivity, control_task, selectivity
from .linear import LinearProbe
from .mdl import VOITA_FRACTIONS, OnlineCode, block_boundaries, mdl_probe, online_codelength
from .mlp import MLPProbe
from .quadratic import QuadraticProbe
from .sweep import probe_sites

__all__ = [
    "LinearProbe", "MLPProbe", "OnlineCode", "Probe", "QuadraticProbe", "Selectivity",
    "VOITA_FRACTIONS", "block_boundaries", "control_task", "mdl_probe", "online_codelength",
    "probe_sites", "selectivity",
]
