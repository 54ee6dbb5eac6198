"""The registry of similarity measures and the invariances each one declares (after ReSi).

A measure is invariant to a transformation T of one representation when
`measure(x, T(y)) = measure(x, y)`. The flags name families of T acting on `y [n, q]`:
`orthogonal` (y @ Q, Q orthogonal), `isotropic_scaling` (a·y, a > 0), `invertible_linear`
(y @ A, A invertible), `permutation` (of the units, the columns) and `translation`
(y + c for a row vector c). The test suite checks every declared flag.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

from ..errors import ConfigError
from .cca import cca, pwcca, svcca
from .cka import cka
from .knn import mutual_knn
from .procrustes import procrustes
from .rsa import rsa

ORTHOGONAL = "orthogonal"
ISOTROPIC_SCALING = "isotropic_scaling"
INVERTIBLE_LINEAR = "invertible_linear"
PERMUTATION = "permutation"
TRANSLATION = "translation"
INVARIANCES = frozenset({ORTHOGONAL, ISOTROPIC_SCALING, INVERTIBLE_LINEAR, PERMUTATION,
                         TRANSLATION})
KINDS = ("similarity", "distance")


@dataclasses.dataclass(frozen=True)
class Measure:
    """A similarity measure `fn(x, y, **kw) -> float` and its metadata.

    Attributes:
        kind: "similarity" (larger is more similar) or "distance" (0 for equivalent inputs).
        invariances: the transformation families (see module doc) the measure ignores.
        symmetric: `fn(x, y) == fn(y, x)`.
        metric: a proper metric (distances only: triangle inequality holds).
    """

    name: str
    fn: Callable[..., object]
    kind: str = "similarity"
    invariances: frozenset[str] = frozenset()
    symmetric: bool = True
    metric: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS}, got {self.kind!r}")
        unknown = set(self.invariances) - INVARIANCES
        if unknown:
            raise ConfigError(f"unknown invariance(s) {sorted(unknown)}; expected a subset of "
                              f"{sorted(INVARIANCES)}")
        object.__setattr__(self, "invariances", frozenset(self.invariances))

    def __call__(self, x, y, **kwargs):
        return self.fn(x, y, **kwargs)


_SHAPE = frozenset({ORTHOGONAL, ISOTROPIC_SCALING, PERMUTATION, TRANSLATION})

MEASURES: dict[str, Measure] = {m.name: m for m in [
    Measure("cka", cka, invariances=_SHAPE),
    Measure("cka_debiased", partial(cka, debiased=True), invariances=_SHAPE),
    # The median-heuristic bandwidth scales with the data, hence the scale invariance.
    Measure("cka_rbf", partial(cka, kernel="rbf"), invariances=_SHAPE),
    # Correlation distance centres each pattern across units, not each unit across stimuli.
    Measure("rsa", rsa, invariances=frozenset({ISOTROPIC_SCALING, PERMUTATION})),
    Measure("rsa_euclidean", partial(rsa, rdm_metric="euclidean"), invariances=_SHAPE),
    Measure("cca", cca, invariances=INVARIANCES),
    Measure("svcca", svcca, invariances=_SHAPE),
    # The projection weights sum |⟨h, unit⟩| over units: a rotation of the units changes them.
    Measure("pwcca", pwcca, invariances=frozenset({ISOTROPIC_SCALING, PERMUTATION,
                                                   TRANSLATION}), symmetric=False),
    Measure("procrustes", procrustes, kind="distance", invariances=_SHAPE),
    Measure("procrustes_angular", partial(procrustes, angular=True), kind="distance",
            invariances=_SHAPE, metric=True),
    Measure("mutual_knn", mutual_knn, invariances=frozenset({ORTHOGONAL, ISOTROPIC_SCALING,
                                                             PERMUTATION})),
]}


def resolve(measure) -> Measure:
    """A `Measure` from a registered name, a `Measure` or a plain callable (asymmetric)."""
    if isinstance(measure, Measure):
        return measure
    if isinstance(measure, str):
        if measure not in MEASURES:
            raise ConfigError(f"unknown measure {measure!r}; expected one of {sorted(MEASURES)}, "
                              "a Measure or a callable")
        return MEASURES[measure]
    if callable(measure):
        return Measure(getattr(measure, "__name__", "custom"), measure, symmetric=False)
    raise ConfigError(f"measure must be a name, a Measure or a callable, got {measure!r}")
