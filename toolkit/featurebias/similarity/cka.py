"""Centred kernel alignment: linear, RBF and debiased CKA, and CKA over minibatches (§8.1).

Linear CKA with more stimuli than units is computed in feature space from the centred cross-
products `XᵀX`, `YᵀY`, `YᵀX` (time O(n·(p+q)²), memory O((p+q)²), rows streamed in float64
chunks into one symmetric product, BLAS dsyrk on CPU): it never forms an n×n Gram matrix, and
costs about d/n of the Gram formula's multiply-adds for d = p = q. The other cases (n ≤ p, RBF
kernels) use Gram matrices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
import torch
from torch import Tensor

from ..erasure.linalg import SymmetricSum
from ..errors import ConfigError, NotFittedError, RangeError, ShapeError
from ._inputs import (
    F64,
    centred,
    choice,
    chunk_rows,
    column_mean,
    matrix,
    pair,
    require_varying,
    self_product,
)

KERNELS = ("linear", "rbf")


def cka(x, y, kernel: str = "linear", *, debiased: bool = False, sigma=None,
        theta=1.0) -> float:
    """CKA between `x [n, p]` and `y [n, q]`; 1 for identical representations.

    Args:
        kernel: "linear" or "rbf" (`exp(−‖xᵢ − xⱼ‖² / 2σ²)`).
        debiased: use the unbiased HSIC estimator (needs n ≥ 4; can be negative; ≈ 0 for
            independent representations, where the biased estimate is inflated by p/n).
        sigma: RBF bandwidth, one number or a pair (for x, y); None uses the median heuristic
            `σ² = θ²·median ‖xᵢ − xⱼ‖²` (over all n² pairs, diagonal included).
        theta: the median-heuristic fraction θ (one number or a pair).
    """
    choice(kernel, "kernel", KERNELS)
    if kernel == "linear" and (sigma is not None or theta != 1.0):
        raise ConfigError("sigma and theta only apply to kernel='rbf'; got them with "
                          "kernel='linear'")
    x, y = pair(x, y, min_rows=4 if debiased else 2)
    for t, name in ((x, "x"), (y, "y")):
        require_varying(t, name, "CKA")
    n = x.shape[0]
    if kernel == "linear" and n > max(x.shape[1], y.shape[1]):
        hxy, hxx, hyy = _feature_space_terms(x, y, debiased)
    else:
        sx, sy = _per_side(sigma, "sigma"), _per_side(theta, "theta")
        k = _gram(x, kernel, sx[0], sy[0], "x")
        k = _u_centre(k) if debiased else _double_centre(k)
        ell = _gram(y, kernel, sx[1], sy[1], "y")
        ell = _u_centre(ell) if debiased else _double_centre(ell)
        hxy, hxx, hyy = (_dot(k, ell), _dot(k, k), _dot(ell, ell))
    return _ratio(hxy, hxx, hyy)


def _ratio(hxy: Tensor, hxx: Tensor, hyy: Tensor) -> float:
    denom = float(hxx) * float(hyy)
    if not denom > 0:
        raise RangeError("CKA is undefined: a representation has zero (unbiased) HSIC with "
                         "itself; expected representations that vary across stimuli")
    return max(-1.0, min(1.0, float(hxy) / math.sqrt(denom)))


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return torch.dot(a.reshape(-1), b.reshape(-1))  # no n×n temporary, unlike (a * b).sum()


def _feature_space_terms(x: Tensor, y: Tensor, debiased: bool) -> tuple[Tensor, ...]:
    """`(h(X,Y), h(X,X), h(Y,Y))` from centred cross-products, rows streamed in chunks.

    One symmetric product of the joint rows `[X − x̄, Y − ȳ]` holds all three blocks `XᵀX`,
    `YᵀX`, `YᵀY`: on CPU a single dsyrk per chunk, the multiply-adds of two syrks and a gemm
    in one larger and more efficient BLAS call.
    """
    n, p, q = x.shape[0], x.shape[1], y.shape[1]
    mx, my = column_mean(x), column_mean(y)
    joint = SymmetricSum(p + q, x.device)
    # ~8 MiB chunks stay in the last-level cache from the copy that centres them to dsyrk.
    step = chunk_rows(p + q, elements=1 << 20)
    buffer = x.new_empty((min(step, n), p + q), dtype=F64)
    # Centred row norms², for the unbiased estimator only.
    norms = x.new_empty((n, 2), dtype=F64) if debiased else None
    for start in range(0, n, step):
        rows = buffer[: min(step, n - start)]
        torch.sub(x[start:start + step], mx, out=rows[:, :p])
        torch.sub(y[start:start + step], my, out=rows[:, p:])
        joint.add(rows)
        if debiased:
            norms[start:start + step, 0] = rows[:, :p].square().sum(1)
            norms[start:start + step, 1] = rows[:, p:].square().sum(1)
    s = joint.total()
    terms = (s[p:, :p].square().sum(), s[:p, :p].square().sum(), s[p:, p:].square().sum())
    if not debiased:
        return terms
    # ⟨U(K), U(L)⟩_F in feature space (SCIENCE.md §8.1), with a, b the centred row norms².
    a, b = norms.unbind(1)

    def unbias(h, u, v):
        return h - n / (n - 2) * torch.dot(u, v) + u.sum() * v.sum() / ((n - 1) * (n - 2))
    return unbias(terms[0], a, b), unbias(terms[1], a, a), unbias(terms[2], b, b)


def _per_side(value, name: str) -> tuple:
    pairlike = isinstance(value, (tuple, list))
    values = tuple(value) if pairlike else (value, value)
    if len(values) != 2:
        raise ConfigError(f"{name} must be one number or a pair (for x, y), got {value!r}")
    for v in values:
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not math.isfinite(v) or v <= 0):
            raise ConfigError(f"{name} must be a positive finite number, got {v!r}")
    return values


def _gram(x: Tensor, kernel: str, sigma, theta, name: str) -> Tensor:
    xc = centred(x)  # distances and centred Gram matrices do not depend on the mean
    g = self_product(xc, rows=True)
    if kernel == "linear":
        return g
    sq = g.diagonal().clone()
    d = (sq[:, None] + sq[None, :] - 2 * g).clamp_min_(0)
    d.fill_diagonal_(0)
    if sigma is None:
        med = _median(d.reshape(-1))
        if not med > 0:
            raise RangeError(f"the median squared distance between rows of {name} is 0 (most "
                             "rows coincide); pass an explicit sigma for the RBF kernel")
        s2 = theta**2 * med
    else:
        s2 = sigma**2
    return d.div_(-2 * s2).exp_()


def _median(v: Tensor) -> float:
    """numpy's median (mean of the two middle values); torch.median takes the lower one."""
    m = v.numel()
    lo = float(v.kthvalue((m + 1) // 2).values)
    return lo if m % 2 else 0.5 * (lo + float(v.kthvalue(m // 2 + 1).values))


def _double_centre(k: Tensor) -> Tensor:
    """`HKH`, in place."""
    k -= k.mean(0, keepdim=True)
    k -= k.mean(1, keepdim=True)
    return k


def _u_centre(k: Tensor) -> Tensor:
    """Székely–Rizzo U-centring, in place: `⟨U(K), U(L)⟩ / n(n−3)` is the unbiased HSIC."""
    n = k.shape[0]
    k.fill_diagonal_(0)
    r = k.sum(1) / (n - 2)
    r -= r.sum() / (2 * (n - 1))
    k -= r[:, None]
    k -= r[None, :]
    k.fill_diagonal_(0)
    return k


def _hsic_u_matrix(blocks: list[Tensor]) -> Tensor:
    """Unbiased linear-kernel HSIC between every pair of blocks `[m, p_i]`: a k×k matrix."""
    m = blocks[0].shape[0]
    if m > max(b.shape[1] for b in blocks):
        cs = [centred(b) for b in blocks]
        norms = [c.square().sum(1) for c in cs]
        h = blocks[0].new_zeros((len(cs), len(cs)), dtype=F64)
        for i, (ci, ai) in enumerate(zip(cs, norms, strict=True)):
            for j in range(i, len(cs)):
                cj, aj = cs[j], norms[j]
                h[i, j] = h[j, i] = ((cj.T @ ci).square().sum() - m / (m - 2) * torch.dot(ai, aj)
                                     + ai.sum() * aj.sum() / ((m - 1) * (m - 2)))
    else:
        us = torch.stack([_u_centre(_gram(b, "linear", None, None, "")).reshape(-1)
                          for b in blocks])
        h = us @ us.T
    return h / (m * (m - 3))


class MinibatchCKA:
    """Linear CKA accumulated over minibatches with unbiased HSIC (Nguyen et al. 2021).

    `update(x, y)` adds a batch of one pair; `update({name: acts})` adds a batch of several
    representations (all pairs are accumulated, O(m²) memory per name for batches of m ≤ p
    rows). Every batch must hold the same stimuli in every representation and m ≥ 4 rows.
    `CKA = mean_b HSIC_u(K_b, L_b) / sqrt(mean_b HSIC_u(K_b, K_b) · mean_b HSIC_u(L_b, L_b))`,
    each batch weighted equally; it converges to the population CKA as batches accumulate.
    """

    def __init__(self) -> None:
        self._names: list[str] | None = None
        self._widths: list[int] | None = None
        self._pair_mode: bool | None = None
        self._sums: Tensor | None = None
        self.n_batches_ = 0
        self.n_samples_ = 0

    def update(self, x, y=None) -> MinibatchCKA:
        """Add one batch; a rejected batch leaves the accumulated state unchanged."""
        pair_mode = not isinstance(x, Mapping)
        if pair_mode:
            if y is None:
                raise ConfigError("update needs x and y (one pair) or one dict {name: acts}")
            blocks = dict(zip(("x", "y"), pair(x, y, min_rows=4), strict=True))
        else:
            if y is not None:
                raise ConfigError("pass either update(x, y) or update({name: acts}), not both")
            if not x:
                raise ConfigError("the activations dict is empty; expected {name: tensor}")
            blocks = {str(k): matrix(v, f"activations {k!r}", min_rows=4) for k, v in x.items()}
        self._check_batch(blocks, pair_mode)
        h = _hsic_u_matrix(list(blocks.values()))
        if self._sums is None:
            self._names, self._pair_mode = list(blocks), pair_mode
            self._widths = [b.shape[1] for b in blocks.values()]
            self._sums = h
        else:
            self._sums = self._sums + h.to(self._sums.device)
        self.n_batches_ += 1
        self.n_samples_ += next(iter(blocks.values())).shape[0]
        return self

    def all_reduce(self, group=None) -> MinibatchCKA:
        """Add up the batches of every rank of `group` (torch.distributed) in place.

        Each rank updates on its own batches (any number, none included); afterwards every
        rank holds the sums over all batches, so the result equals one process fed every
        batch (up to the order of a sum). Ranks that saw batches must agree on the names,
        widths and form (`ConfigError` on every rank otherwise). A collective: every rank
        calls it. A no-op on one process. Returns self.
        """
        from .. import distributed

        if not distributed.active(group):
            return self
        layout = None if self._sums is None else (self._names, self._widths, self._pair_mode)
        seen = [x for x in distributed.all_gather_object(layout, group) if x is not None]
        if not seen:
            return self
        if any(x != seen[0] for x in seen):
            raise ConfigError(f"ranks fed MinibatchCKA different representations: {seen} "
                              "(names, widths, pair form); expected the same on every rank")
        names, widths, pair_mode = seen[0]
        sums = self._sums if self._sums is not None else torch.zeros(
            len(names), len(names), dtype=F64)
        counts = torch.tensor([self.n_batches_, self.n_samples_], dtype=torch.int64)
        sums = distributed.all_reduce(sums, group=group)
        counts = distributed.all_reduce(counts, group=group).tolist()
        self._names, self._widths, self._pair_mode = list(names), list(widths), pair_mode
        self._sums, (self.n_batches_, self.n_samples_) = sums, counts
        return self

    def _check_batch(self, blocks: dict[str, Tensor], pair_mode: bool) -> None:
        rows = {b.shape[0] for b in blocks.values()}
        if len(rows) > 1:
            raise ShapeError(f"the batch's representations have {sorted(rows)} rows; expected "
                             "the same stimuli (rows) in every one")
        if self._names is None:
            return
        if pair_mode != self._pair_mode:
            raise ConfigError("this MinibatchCKA was fed "
                              + ("pairs (x, y)" if self._pair_mode else "dicts")
                              + "; keep the same form for every batch")
        if list(blocks) != self._names:
            raise ConfigError(f"the batch has names {list(blocks)}, earlier batches "
                              f"{self._names}; expected the same names in the same order")
        for (name, b), w in zip(blocks.items(), self._widths, strict=True):
            if b.shape[1] != w:
                raise ShapeError(f"{name!r} has {b.shape[1]} columns in this batch but {w} in "
                                 "earlier ones; expected the same width in every batch")

    @property
    def names(self) -> list[str]:
        return list(self._names or [])

    def matrix(self) -> Tensor:
        """CKA between every pair of representations, a k×k float64 tensor."""
        if self._sums is None:
            raise NotFittedError("MinibatchCKA has seen no batch; call update first")
        diag = self._sums.diagonal()
        if not bool((diag > 0).all()):
            bad = [n for n, d in zip(self._names, diag.tolist(), strict=True) if not d > 0]
            raise RangeError(f"representation(s) {bad} have zero HSIC with themselves (they do "
                             "not vary within batches); CKA is undefined there")
        out = self._sums / (diag[:, None] * diag[None, :]).sqrt()
        return out.clamp(-1, 1).fill_diagonal_(1)

    @property
    def value(self) -> float:
        """CKA of the pair fed to `update(x, y)`."""
        if self._pair_mode is False:
            raise ConfigError("value is for update(x, y); with dicts use matrix() or to_frame()")
        return float(self.matrix()[0, 1])

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per ordered pair (`x`, `y`, `measure`, `value`)."""
        m = self.matrix().cpu()
        return pd.DataFrame([(a, b, "cka_minibatch", float(m[i, j]))
                             for i, a in enumerate(self._names)
                             for j, b in enumerate(self._names)],
                            columns=["x", "y", "measure", "value"])

    def __repr__(self) -> str:
        return (f"MinibatchCKA(names={self.names}, n_batches_={self.n_batches_}, "
                f"n_samples_={self.n_samples_})")
