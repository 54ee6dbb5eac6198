"""Representational similarity analysis: comparing RDMs, with a permutation test (§8.2).

Comparators work on the upper triangles (i < j) of two RDMs, as rsatoolbox's `compare` does:
"spearman" (Pearson on average ranks), "pearson", "cosine" (uncentred) and "kendall_tau_a"
(ties count 0 in the numerator and are not corrected for in the denominator; Nili et al. 2014),
computed in O(q log² q) for q dissimilarities by a vectorised merge count of discordant pairs.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import Tensor

from .. import _validate as check
from ..errors import NonFiniteError, RangeError, ShapeError
from ._inputs import F64, choice, generator, pair, require_varying
from .rdm import rdm64

COMPARATORS = ("spearman", "pearson", "kendall_tau_a", "cosine")


@dataclasses.dataclass(frozen=True)
class RSAResult:
    """An RSA comparison with its one-sided permutation p-value (condition labels shuffled)."""

    value: float
    p_value: float
    n_permutations: int

    def __float__(self) -> float:
        return self.value


def rsa(x, y, *, rdm_metric: str = "correlation", compare: str = "spearman", conditions=None,
        folds=None, noise=None, permutations: int = 0, seed=0) -> float | RSAResult:
    """Similarity of the RDMs of `x [n, p]` and `y [n, q]` (rows: the same stimuli).

    Args:
        rdm_metric, conditions, folds: as in `rdm`, applied to both.
        noise: as in `rdm`; a pair (noise_x, noise_y) gives each side its own.
        compare: "spearman", "pearson", "kendall_tau_a" or "cosine".
        permutations: if > 0, also test against shuffled condition labels and return an
            `RSAResult`; `p = (1 + #{null ≥ observed}) / (1 + permutations)`.
        seed: int or torch.Generator for the permutations.
    """
    x, y = pair(x, y)
    for t, name in ((x, "x"), (y, "y")):
        require_varying(t, name, "RSA")
    noise_x, noise_y = noise if isinstance(noise, (tuple, list)) else (noise, noise)
    a = rdm64(x, rdm_metric, conditions, folds, noise_x, "x")
    b = rdm64(y, rdm_metric, conditions, folds, noise_y, "y")
    return _compare(a, b, compare, permutations, seed)


def compare_rdms(a, b, method: str = "spearman", *, permutations: int = 0,
                 seed=0) -> float | RSAResult:
    """Compare two RDMs given as square matrices `[C, C]` or upper-triangle vectors `[q]`."""
    sa, sb = _square(a, "a"), _square(b, "b")
    if sa.shape != sb.shape:
        raise ShapeError(f"a is an RDM of {sa.shape[0]} conditions but b of {sb.shape[0]}; "
                         "expected RDMs of the same conditions")
    check.same_device(("a", sa), ("b", sb))
    return _compare(sa, sb, method, permutations, seed)


def _square(r, name: str) -> Tensor:
    r = check.as_tensor(r, name)
    if r.ndim == 1:
        c = int(round((1 + math.sqrt(1 + 8 * r.numel())) / 2))
        if c * (c - 1) // 2 != r.numel():
            raise ShapeError(f"{name} has {r.numel()} entries, which is not C(C−1)/2 for any "
                             "C; expected an RDM [C, C] or its upper triangle [C(C−1)/2]")
        iu = torch.triu_indices(c, c, 1, device=r.device)
        sq = r.new_zeros((c, c), dtype=F64)
        sq[iu[0], iu[1]] = r.to(F64)
        return sq + sq.T
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise ShapeError(f"{name} has shape {tuple(r.shape)}; expected a square RDM [C, C] or "
                         "its upper triangle [C(C−1)/2]")
    # An RDM computed in float32 (torch.cdist, 1 − corrcoef) is symmetric to its rounding.
    rounding = max(1e-10, 64 * torch.finfo(r.dtype).eps) if r.is_floating_point() else 1e-10
    r = r.to(F64)
    scale = float(r.abs().max()) if r.numel() and bool(torch.isfinite(r).all()) else 0.0
    if not torch.allclose(r, r.T, rtol=0, atol=rounding * scale, equal_nan=True):
        gap = float((r - r.T).nan_to_num(0.0).abs().max())
        raise RangeError(f"{name} is not symmetric: |D[i, j] − D[j, i]| reaches {gap:.3g} "
                         f"(tolerance {rounding * scale:.3g}); expected an RDM")
    return r


def _compare(a: Tensor, b: Tensor, method: str, permutations: int, seed) -> float | RSAResult:
    choice(method, "compare", COMPARATORS)
    permutations = check.positive_int(permutations, "permutations", minimum=0)
    c = a.shape[0]
    if c < 3:
        raise ShapeError(f"the RDMs have {c} conditions; comparing RDMs needs at least 3 "
                         "(2 or more dissimilarities)")
    iu = torch.triu_indices(c, c, 1, device=a.device)
    flat = iu[0] * c + iu[1]
    # index_select on the flat matrix: several times faster than a[iu[0], iu[1]] on CPU
    va, vb = a.reshape(-1).index_select(0, flat), b.reshape(-1).index_select(0, flat)
    for v, name in ((va, "a"), (vb, "b")):
        if not bool(torch.isfinite(v.sum())) and not bool(torch.isfinite(v).all()):
            raise NonFiniteError(f"the RDM of {name} holds NaN/Inf dissimilarities; expected "
                                 "finite values")
    if method == "kendall_tau_a":
        value = kendall_tau_a(va, vb)
        if not permutations:
            return value
        null = [kendall_tau_a(va, _permuted(b, perms, iu)[0])
                for perms in _permutations(c, permutations, seed, a.device, 1)]
        null = torch.tensor(null, dtype=F64)
    else:
        ta, tb = _standardise(va, method, "a"), _standardise(vb, method, "b")
        value = max(-1.0, min(1.0, float(torch.dot(ta, tb))))
        if not permutations:
            return value
        tb_square = torch.zeros_like(b)
        tb_square[iu[0], iu[1]] = tb
        tb_square = tb_square + tb_square.T
        chunk = max(1, (1 << 21) // iu.shape[1])
        null = torch.cat([_permuted(tb_square, perms, iu) @ ta
                          for perms in _permutations(c, permutations, seed, a.device, chunk)])
    # Tolerance: a permutation equivalent to the identity must count as "at least as large".
    hits = int((null >= value - 1e-12).sum())
    return RSAResult(value, (1 + hits) / (1 + permutations), permutations)


def _standardise(v: Tensor, method: str, name: str) -> Tensor:
    """`v` transformed so that the comparison is a dot product (unit norm, centred if needed)."""
    if method == "spearman":
        v = average_ranks(v).sub_((v.numel() + 1) / 2)  # the mean rank, ties or not
    elif method == "pearson":
        v = v - v.mean()
    norm = v.norm()
    if not float(norm) > 0:
        raise RangeError(f"the RDM of {name} has all dissimilarities "
                         + ("equal" if method != "cosine" else "zero")
                         + f"; the {method} comparison is undefined. Expected varying "
                         "dissimilarities")
    return v.div_(norm) if method == "spearman" else v / norm


def _permutations(c: int, total: int, seed, device, chunk: int):
    gen = generator(seed)
    for start in range(0, total, chunk):
        m = min(chunk, total - start)
        yield torch.stack([torch.randperm(c, generator=gen) for _ in range(m)]).to(device)


def _permuted(square: Tensor, perms: Tensor, iu: Tensor) -> Tensor:
    """Upper triangles `[k, q]` of `square` with its conditions relabelled by each permutation."""
    flat = perms[:, iu[0]] * square.shape[0] + perms[:, iu[1]]
    return square.reshape(-1).index_select(0, flat.reshape(-1)).view(flat.shape)


def _sort(v: Tensor) -> tuple[Tensor, Tensor]:
    """`(sorted values, order)` of a vector."""
    if v.device.type == "cpu":  # numpy's vectorised sort and gather are several times faster
        a = v.detach().contiguous().numpy()
        order = np.argsort(a)
        return torch.from_numpy(a[order]), torch.from_numpy(order)
    return v.sort()


def _tied_groups(v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """`(order, group [q] of each sorted value, group sizes)` with equal values grouped."""
    values, order = _sort(v)
    _, group, counts = torch.unique_consecutive(values, return_inverse=True,
                                                return_counts=True)
    return order, group, counts


def average_ranks(v: Tensor) -> Tensor:
    """1-based ranks of `v` with ties given their average rank (scipy's rankdata), float64."""
    values, order = _sort(v)
    if not bool((values[1:] == values[:-1]).any()):  # no ties: ranks are the sort positions
        positions = torch.arange(1, v.numel() + 1, dtype=F64, device=v.device)
        return torch.empty_like(positions).scatter_(0, order, positions)
    _, group, counts = torch.unique_consecutive(values, return_inverse=True,
                                                return_counts=True)
    counts = counts.to(F64)
    avg = counts.cumsum(0) - (counts - 1) / 2
    return torch.empty(v.shape, dtype=F64, device=v.device).scatter_(
        0, order, avg.index_select(0, group))


def _dense_ranks(v: Tensor) -> tuple[Tensor, Tensor]:
    """0-based dense ranks (equal values share one) and the size of each tie group."""
    order, group, counts = _tied_groups(v)
    return torch.empty_like(order).scatter_(0, order, group), counts


def kendall_tau_a(u: Tensor, v: Tensor) -> float:
    """Kendall's τ_a = (concordant − discordant) / (q(q−1)/2) between two vectors `[q]`."""
    u, v = check.as_tensor(u, "u").reshape(-1), check.as_tensor(v, "v").reshape(-1)
    if u.numel() != v.numel() or u.numel() < 2:
        raise ShapeError(f"u and v have {u.numel()} and {v.numel()} values; expected two "
                         "vectors of the same length, at least 2")
    check.check_finite(u, "u")
    check.check_finite(v, "v")
    q = u.numel()
    tot = q * (q - 1) // 2
    ru, cu = _dense_ranks(u)
    rv, cv = _dense_ranks(v)
    # Sorted by (u, v): every strict inversion of v is then a discordant pair.
    order, _, ck = _tied_groups(ru * cv.numel() + rv)
    discordant = _inversions(rv.index_select(0, order))

    def tied(counts):
        return int((counts * (counts - 1) // 2).sum())

    # concordant = tot − discordant − ties in u − ties in v + ties in both
    con_minus_dis = tot - tied(cu) - tied(cv) + tied(ck) - 2 * discordant
    return max(-1.0, min(1.0, con_minus_dis / tot))


def _inversions(seq: Tensor) -> int:
    """Pairs i < j with seq[i] > seq[j], by a bottom-up merge sort vectorised over blocks.

    At each level every right half-block counts the larger elements of its sorted left
    half-block with a batched binary search; the same searches give each element's place in
    the merged block. O(m log² m) work, no Python loop over elements, so it runs on GPU too.
    """
    m = seq.numel()
    size = 1 << max(0, (m - 1).bit_length())
    # Padding at the end with a value above all others adds no inversions.
    s = torch.cat([seq, seq.new_full((size - m,), int(seq.max()) + 1)])
    total, width = 0, 1
    while width < size:
        blocks = s.view(-1, 2, width)
        left, right = blocks[:, 0].contiguous(), blocks[:, 1].contiguous()
        not_greater = torch.searchsorted(left, right, right=True)  # left ≤ each right element
        total += int((width - not_greater).sum())
        smaller = torch.searchsorted(right, left)  # right < each left element: a stable merge
        offset = torch.arange(width, device=s.device)
        place = torch.cat([offset + smaller, offset + not_greater], dim=1)
        s = torch.empty_like(s).view(-1, 2 * width).scatter_(
            1, place, blocks.reshape(-1, 2 * width)).reshape(-1)
        width *= 2
    return total
