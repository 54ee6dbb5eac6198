"""QLEACE and the quadratic editor against the reference implementation, concept-erasure 0.2.4.

concept-erasure defaults to OLSE shrinkage (we pass `shrinkage=False`, our default) and moves
every class onto the *uniform* mean of the class means (our `target_mean="uniform"`). For
k = 2 both use the closed-form W₂ geodesic, so maps agree to rounding; for k > 2 its fixed
point stops when the W₂ loss stops decreasing, so the maps are compared at 1e-6 relative.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from concept_erasure.optimal_transport import ot_barycenter, ot_midpoint
from concept_erasure.quadratic import QuadraticFitter as ReferenceFitter
from sklearn.datasets import make_classification

from featurebias.erasure.quadratic import QuadraticFitter

N, D = 1024, 32
# Relative tolerance on maps, barycenters and outputs: closed form (k = 2) or fixed point.
RTOL = {2: 1e-8, 3: 1e-6, 5: 1e-6}


def make_data(k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """SCIENCE.md §3.7 QLEACE data, with priors rising from 1 to 2 (relative)."""
    weights = np.linspace(1.0, 2.0, k)
    x, y = make_classification(
        n_samples=N, n_features=D, n_informative=8, n_redundant=0, n_classes=k,
        weights=list(weights / weights.sum()), flip_y=0.0, class_sep=1.5,
        random_state=2000 + 1000 * seed + k,
    )
    return torch.from_numpy(x), torch.from_numpy(y)


def assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    """Entrywise agreement at `rtol` relative to the largest entry of `expected`."""
    torch.testing.assert_close(actual, expected, rtol=rtol,
                               atol=rtol * float(expected.abs().max()))


@functools.cache
def both(k: int, shrinkage: bool = False):
    x, z = make_data(k)
    if shrinkage:
        x = x.clone()
        x[:, 0] = 2.0  # constant column: singular class covariances, shrinkage needed
    ours = QuadraticFitter.fit(x, z, target_mean="uniform", shrinkage=shrinkage)
    theirs = ReferenceFitter.fit(x, z, shrinkage=shrinkage)
    assert theirs.mean_x.dtype == torch.float64
    return x, z, ours, theirs


@pytest.mark.parametrize("k", [2, 3, 5])
def test_same_class_statistics(k):
    _, _, ours, theirs = both(k)
    assert torch.equal(ours.stats.n, theirs.n.long())
    assert_close_rel(ours.stats.mean_x, theirs.mean_x, rtol=1e-12)
    assert_close_rel(ours.class_covariances(), theirs.sigma_xx, rtol=1e-12)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_same_barycenter(k):
    _, _, ours, theirs = both(k)
    sigmas = theirs.sigma_xx
    if k == 2:
        prior = (theirs.n / theirs.n.sum()).tolist()
        reference = ot_midpoint(sigmas[0], sigmas[1], *prior)
    else:
        reference = ot_barycenter(sigmas, theirs.n)
    # The barycenter is not a weighted average of the class covariances (the test can fail).
    average = (ours.priors.to(torch.float64)[:, None, None] * sigmas).sum(0)
    assert (average - reference).abs().max() > 1e-3 * reference.abs().max()
    assert_close_rel(ours.barycenter(), reference, rtol=RTOL[k])


@pytest.mark.parametrize("k", [2, 3, 5])
def test_same_eraser(k):
    x, z, ours, theirs = both(k)
    mine, ref = ours.eraser, theirs.eraser
    assert_close_rel(mine.class_means, ref.class_means, rtol=1e-12)
    assert_close_rel(mine.target_mean, ref.global_mean, rtol=1e-12)
    assert_close_rel(mine.ot_maps, ref.ot_maps, rtol=RTOL[k])
    assert_close_rel(mine(x, z), ref(x, z), rtol=RTOL[k])
    # Both are label-dependent: different labels give a different output.
    shifted = (z + 1) % k
    assert_close_rel(mine(x, shifted), ref(x, shifted), rtol=RTOL[k])
    assert (mine(x, shifted) - mine(x, z)).abs().max() > 1e-2


@pytest.mark.parametrize("k", [2, 3, 5])
def test_same_editor(k):
    x, z, ours, theirs = both(k)
    mine, ref = ours.editor(), theirs.editor()
    assert ref.ot_maps.shape == (k, k, D, D)
    for t in range(k):
        expected = ref(x, z, t)
        assert_close_rel(mine(x, z, t), expected, rtol=1e-8)
        for s in range(k):
            rows = z == s
            # Their pairwise matrix, applied by hand: μ_t + A_{s→t}(x − μ_s).
            by_hand = (x[rows] - ref.class_means[s]) @ ref.ot_maps[s, t] + ref.class_means[t]
            assert_close_rel(mine(x[rows], z[rows], t), by_hand, rtol=1e-8)


def test_same_eraser_with_shrinkage():
    """Both use the Bodnar et al. shrinkage; with 0 < α < 1 our clipping does not bind."""
    x, z, ours, theirs = both(3, shrinkage=True)
    assert_close_rel(ours.class_covariances(), theirs.sigma_xx, rtol=1e-12)
    mine, ref = ours.eraser, theirs.eraser
    assert_close_rel(mine.ot_maps, ref.ot_maps, rtol=RTOL[3])
    assert_close_rel(mine(x, z), ref(x, z), rtol=RTOL[3])
