"""featurebias: which features a network represents, how strongly, and how fast it learns them.

Concept erasure (LEACE, QLEACE and approximations) inside any layer, probes, representation
similarity and feature-strength metrics. The most used names are re-exported here.
"""

from .erasure import (
    AlfQleaceEraser,
    AlfQleaceFitter,
    ConceptEraser,
    IdentityEraser,
    IterativeEraser,
    LeaceEraser,
    LeaceFitter,
    OracleEraser,
    OracleFitter,
    QuadraticEditor,
    QuadraticEraser,
    QuadraticFitter,
    RandomEraser,
    check_guardedness,
)
from .errors import (
    ConfigError,
    DeviceError,
    DTypeError,
    FeatureBiasError,
    FormatError,
    LabelError,
    NonFiniteError,
    NotFittedError,
    RangeError,
    ShapeError,
    SiteError,
)
from .hooks import collect, erase_at, fit_erasers, patch_at
from .sites import list_sites, resolve
from .store import ActivationStore

__version__ = "0.1.0"

# Imported on first use: probes pull in torch.optim (seconds on a cold start), and a
# command that only erases should not pay for it.
_LAZY = {
    "LinearProbe": "probes", "QuadraticProbe": "probes", "MLPProbe": "probes",
    "probe_sites": "probes", "mdl_probe": "probes", "selectivity": "probes",
    "variance_explained": "features", "pc_attribution": "features",
    "unit_selectivity": "features",
    "cka": "similarity", "MinibatchCKA": "similarity", "rdm": "similarity", "rsa": "similarity",
    "cca": "similarity", "svcca": "similarity", "pwcca": "similarity",
    "procrustes": "similarity", "mutual_knn": "similarity", "similarity_matrix": "similarity",
    "train": "training", "TrainConfig": "training", "prequential_mdl": "training",
    "LinearisedTrainer": "training", "empirical_ntk": "training",
    "synthetic_task": "datasets", "digits": "datasets", "erase_dataset": "datasets",
}


# Subpackages that `import featurebias` does not load; `featurebias.plots` etc. import them.
_SUBPACKAGES = {"analyses", "datasets", "features", "models", "plots", "probes", "similarity",
                "training"}


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'featurebias' has no attribute {name!r}")

__all__ = [
    "ActivationStore", "collect", "erase_at", "fit_erasers", "list_sites", "patch_at", "resolve",
    "AlfQleaceEraser", "AlfQleaceFitter", "ConceptEraser", "ConfigError", "DTypeError",
    "DeviceError", "FeatureBiasError", "FormatError", "IdentityEraser", "IterativeEraser",
    "LabelError", "LeaceEraser", "LeaceFitter", "NonFiniteError", "NotFittedError",
    "OracleEraser", "OracleFitter", "QuadraticEditor", "QuadraticEraser", "QuadraticFitter",
    "RandomEraser", "RangeError", "ShapeError", "SiteError", "check_guardedness",
    "__version__", *_LAZY,
]
