"""Representation similarity: CKA, RSA, CCA family, Procrustes and mutual k-NN (SCIENCE.md §8).

Every measure takes two representations of the same n stimuli, `x [n, p]` and `y [n, q]`
(widths may differ; `[n, ...]` is flattened), works in float64 on the inputs' device and returns
a float (RSA with a permutation test: an `RSAResult`). `MEASURES` lists them with their kind
and declared invariances; `similarity_matrix` compares all pairs of a collection.
"""

from .cca import canonical_correlations, cca, pwcca, svcca
from .cka import MinibatchCKA, cka
from .knn import mutual_knn
from .matrix import similarity_matrix
from .measures import (
    INVARIANCES,
    INVERTIBLE_LINEAR,
    ISOTROPIC_SCALING,
    MEASURES,
    ORTHOGONAL,
    PERMUTATION,
    TRANSLATION,
    Measure,
)
from .procrustes import procrustes
from .rdm import noise_precision, rdm
from .rsa import RSAResult, compare_rdms, kendall_tau_a, rsa

__all__ = [
    "INVARIANCES", "INVERTIBLE_LINEAR", "ISOTROPIC_SCALING", "MEASURES", "ORTHOGONAL",
    "PERMUTATION", "TRANSLATION", "Measure", "MinibatchCKA", "RSAResult",
    "canonical_correlations", "cca", "cka", "compare_rdms", "kendall_tau_a", "mutual_knn",
    "noise_precision", "procrustes", "pwcca", "rdm", "rsa", "similarity_matrix", "svcca",
]
