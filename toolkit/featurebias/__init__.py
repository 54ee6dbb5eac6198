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

__all__ = [
    "ActivationStore", "collect", "erase_at", "fit_erasers", "list_sites", "patch_at", "resolve",
    "AlfQleaceEraser", "AlfQleaceFitter", "ConceptEraser", "ConfigError", "DTypeError",
    "DeviceError", "FeatureBiasError", "FormatError", "IdentityEraser", "IterativeEraser",
    "LabelError", "LeaceEraser", "LeaceFitter", "NonFiniteError", "NotFittedError",
    "OracleEraser", "OracleFitter", "QuadraticEditor", "QuadraticEraser", "QuadraticFitter",
    "RandomEraser", "RangeError", "ShapeError", "SiteError", "check_guardedness",
    "__version__",
]
