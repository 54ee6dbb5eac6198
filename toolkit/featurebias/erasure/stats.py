"""Streaming means and co-moments in float64, updated batch by batch and merged exactly.

The state of each group (the whole data, or one class) is its count `n`, means `mean_x`,
`mean_z`, and unnormalised co-moments `M_xx = Σ (x-μx)(x-μx)ᵀ`, `M_xz`, `M_zz`. Two disjoint
parts merge with Chan, Golub & LeVeque's formula, which is exact for any counts; a batch
update is the merge of the state with the batch's own moments. Shards from several workers
merge the same way, in any order.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .grouping import Groups
from .linalg import olse, sym

_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


class Moments:
    """Per-group running means and co-moments of `x [n, d]` (and optionally `z [n, m]`).

    Args:
        x_dim: width d of x.
        z_dim: width m of z, or 0 to track x alone.
        groups: number of groups (classes); rows are assigned by `update(..., groups=ids)`.
        xx: track `M_xx` (LEACE needs it; the orth variant and Oracle do not).
        zz: track `M_zz`.
        dtype: dtype of the statistics (float64 by default, whatever the input dtype).
    """

    def __init__(self, x_dim: int, z_dim: int = 0, *, groups: int = 1, xx: bool = True,
                 zz: bool = False, dtype: torch.dtype = torch.float64, device=None):
        kw = dict(dtype=dtype, device=device)
        self.n = torch.zeros(groups, dtype=torch.int64, device=device)
        self.mean_x = torch.zeros(groups, x_dim, **kw)
        self.mean_z = torch.zeros(groups, z_dim, **kw)
        self.m_xx = torch.zeros(groups, x_dim, x_dim, **kw) if xx else None
        self.m_xz = torch.zeros(groups, x_dim, z_dim, **kw) if z_dim else None
        self.m_zz = torch.zeros(groups, z_dim, z_dim, **kw) if zz and z_dim else None

    @property
    def dtype(self) -> torch.dtype:
        return self.mean_x.dtype

    @property
    def device(self) -> torch.device:
        return self.mean_x.device

    def _fields(self) -> dict[str, Tensor | None]:
        return {k: getattr(self, k) for k in ("n", "mean_x", "mean_z", "m_xx", "m_xz", "m_zz")}

    def _like(self, **values: Tensor | None) -> Moments:
        new = object.__new__(Moments)
        new.__dict__.update(values)
        return new

    def batch(self, x: Tensor, z: Tensor | None = None, groups: Tensor | None = None) -> Moments:
        """The moments of one batch alone, in this object's dtype and layout."""
        k = self.n.shape[0]
        x = x.to(self.dtype)
        z = x.new_zeros(x.shape[0], 0) if z is None else z.to(self.dtype)
        if k == 1:
            n = torch.tensor([x.shape[0]], device=x.device)
            mean_x, mean_z = x.mean(0, keepdim=True), z.mean(0, keepdim=True)
            cx, cz = (x - mean_x)[None], (z - mean_z)[None]
        else:
            layout = Groups(groups, k, width=x.shape[1])
            n = layout.counts
            mask = layout.mask(self.dtype)
            px, pz = layout.pad(x), layout.pad(z)
            denom = n.clamp_min(1).to(self.dtype)[:, None]
            mean_x = layout.combine(px.sum(1)) / denom
            mean_z = layout.combine(pz.sum(1)) / denom
            # Centre, keeping padding rows at zero so they add nothing to the products.
            cx = (px - layout.per_slab(mean_x)[:, None]) * mask
            cz = (pz - layout.per_slab(mean_z)[:, None]) * mask
        combine = (lambda t: t) if k == 1 else layout.combine
        cxt = cx.mT
        return self._like(
            n=n, mean_x=mean_x, mean_z=mean_z,
            m_xx=None if self.m_xx is None else combine(cxt @ cx),
            m_xz=None if self.m_xz is None else combine(cxt @ cz),
            m_zz=None if self.m_zz is None else combine(cz.mT @ cz),
        )

    def merge(self, other: Moments) -> Moments:
        """The moments of the union of two disjoint parts (Chan et al.); neither is changed."""
        return self.copy()._absorb(other)

    def update(self, x: Tensor, z: Tensor | None = None, groups: Tensor | None = None) -> Moments:
        """Fold a batch in; the state changes only once the batch's moments are computed."""
        return self._absorb(self.batch(x, z, groups))

    def _absorb(self, other: Moments) -> Moments:
        """Merge `other` into self: the co-moments in place, with no `[k, d, d]` temporary
        (a copying merge held ~4 of them: 4-5x the state at its peak); the counts and means
        are new tensors, since erasers keep views of the means they were computed from."""
        n = self.n + other.n
        # Counts stay int64 (exact); weights are formed in the statistics' dtype, since
        # int / int would round through float32.
        n_a, n_b, total = (t.to(self.dtype) for t in (self.n, other.n, n.clamp_min(1)))
        w_other = n_b / total
        w_cross = n_a * n_b / total
        dx = other.mean_x - self.mean_x
        dz = other.mean_z - self.mean_z
        for name, da, db in (("m_xx", dx, dx), ("m_xz", dx, dz), ("m_zz", dz, dz)):
            mine = getattr(self, name)
            if mine is not None:  # M_a + M_b + w·δ_a δ_bᵀ, the outer products fused in
                mine.add_(getattr(other, name)).baddbmm_(
                    (da * w_cross[:, None])[:, :, None], db[:, None, :])
        self.n = n
        self.mean_x = self.mean_x + dx * w_other[:, None]
        self.mean_z = self.mean_z + dz * w_other[:, None]
        return self

    def all_reduce(self, group=None) -> Moments:
        """The moments of the union of every rank's part (torch.distributed); self unchanged.

        Exact for any counts, empty ranks included: with `n = Σ n_r` and the global mean
        `μ = Σ n_r μ_r / n`, `M = Σ_r [M_r + n_r (μ_r − μ)(μ_r − μ)ᵀ]`, because the cross terms
        `Σ_{i∈r} (x_i − μ_r)` vanish (the k-part form of Chan et al.'s merge). So three
        all-reduce sums suffice: the int64 counts, the count-weighted means, and each rank's
        co-moments corrected about the global mean. Memory and traffic stay O(d²) whatever the
        number of ranks, and every rank receives the same bits. Every rank of `group` must
        call this with statistics of the same layout (checked first: a mismatch raises
        `ConfigError` on every rank). On one process it returns a copy.
        """
        from .. import distributed

        if not distributed.active(group):
            return self.copy()
        flags = [int(getattr(self, k) is not None) for k in ("m_xx", "m_xz", "m_zz")]
        code = _DTYPES.index(self.dtype) if self.dtype in _DTYPES else len(_DTYPES)
        distributed.check_agree([*self.mean_x.shape, self.mean_z.shape[1], *flags, code],
                                "the statistics' layout (groups, x_dim, z_dim, which "
                                "co-moments, dtype)", group)
        n = distributed.all_reduce(self.n, group=group)
        weight = self.n.to(self.dtype)[:, None]
        sums = distributed.all_reduce(torch.cat([self.mean_x, self.mean_z], 1) * weight,
                                      group=group)
        mean = sums / n.clamp_min(1).to(self.dtype)[:, None]
        d_x = self.mean_x.shape[1]
        mean_x, mean_z = mean[:, :d_x].contiguous(), mean[:, d_x:].contiguous()
        # This rank's offset from the global mean, times its count (zero for an empty rank).
        dx, dz = self.mean_x - mean_x, self.mean_z - mean_z
        pairs = {"m_xx": (dx, dx), "m_xz": (dx, dz), "m_zz": (dz, dz)}
        names = [k for k in pairs if getattr(self, k) is not None]
        merged = dict.fromkeys(("m_xx", "m_xz", "m_zz"))
        for k in names:
            a, b = pairs[k]
            # A fresh tensor, reduced in place: no second d×d buffer.
            local = torch.baddbmm(getattr(self, k), a[:, :, None] * weight[:, :, None],
                                  b[:, None, :])
            merged[k] = distributed.all_reduce_(local, group=group)
        return self._like(n=n, mean_x=mean_x, mean_z=mean_z, **merged)

    def to_like(self, other: Moments) -> Moments:
        """This state on `other`'s device and dtype (counts stay int64)."""
        return self._like(**{k: None if v is None else v.to(
            device=other.device, dtype=v.dtype if k == "n" else other.dtype)
            for k, v in self._fields().items()})

    def copy(self) -> Moments:
        fields = self._fields().items()
        return self._like(**{k: None if v is None else v.clone() for k, v in fields})

    def covariance(self, which: str = "xx", *, shrinkage: bool = False) -> Tensor:
        """`[groups, ., .]` covariance (`xx`, `xz` or `zz`), divided by n − 1.

        With `shrinkage`, `xx`/`zz` use the optimal linear shrinkage estimate (OLSE) of the
        maximum-likelihood covariance instead.
        """
        m = getattr(self, f"m_{which}")
        n = self.n.to(self.dtype)[:, None, None]
        if which == "xz":
            return m / (n - 1)
        m = sym(m)
        return olse(m / n, n) if shrinkage else m / (n - 1)
