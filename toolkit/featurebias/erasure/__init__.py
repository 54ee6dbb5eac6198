"""Concept erasure: closed-form (LEACE, Oracle, QLEACE), approximate and control erasers.

Each family has a *fitter* that accumulates float64 statistics batch by batch
(`update(x, z)`, exactly mergeable across shards) and exposes a lazily computed, immutable
`.eraser`; every eraser class also has a one-call `Eraser.fit(x, z, **options)`.
"""

from .alf import AlfQleaceEraser, AlfQleaceFitter
from .base import Eraser, Fitter
from .controls import IdentityEraser, RandomEraser, RandomFitter
from .guard import GuardReport, check_guardedness
from .io import load
from .iterative import IterativeEraser, IterativeFitter
from .leace import LeaceEraser, LeaceFitter
from .oracle import OracleEraser, OracleFitter
from .quadratic import QuadraticEditor, QuadraticEraser, QuadraticFitter
from .sklearn import ConceptEraser
from .stats import Moments

__all__ = [
    "AlfQleaceEraser", "AlfQleaceFitter", "ConceptEraser", "Eraser", "Fitter", "GuardReport",
    "IdentityEraser", "IterativeEraser", "IterativeFitter", "LeaceEraser", "LeaceFitter",
    "Moments", "OracleEraser", "OracleFitter", "QuadraticEditor", "QuadraticEraser",
    "QuadraticFitter", "RandomEraser", "RandomFitter", "check_guardedness", "load",
]
