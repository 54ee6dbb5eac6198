"""What every eraser and fitter shares: immutability, devices, save/load, validation."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from .. import _validate as check
from ..errors import ConfigError, LabelError, NotFittedError

E = TypeVar("E", bound="Eraser")

REGISTRY: dict[str, type[Eraser]] = {}


@dataclasses.dataclass(frozen=True, repr=False)
class Eraser:
    """An immutable, fitted concept eraser: `eraser(x)` or, if it needs labels, `eraser(x, z)`.

    Inputs `[..., d]` keep their leading dimensions and dtype. Tensor fields hold float64
    statistics; applying computes in the input's dtype (at least float32) and casts back.
    """

    requires_labels: ClassVar[bool] = False
    fitter: ClassVar[type | None] = None

    def __post_init__(self):
        # Contiguous storage makes results independent of how a tensor was produced (a
        # transposed view picks another GEMM kernel), so save → load is bit-identical.
        for name, value in self._tensors().items():
            object.__setattr__(self, name, value.contiguous())

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        REGISTRY[cls.__name__] = cls

    def __repr__(self) -> str:
        # Shapes, not values: a fitted eraser holds d×d matrices.
        def show(v):
            return (f"<Tensor{list(v.shape)}, {str(v.dtype).removeprefix('torch.')}>"
                    if isinstance(v, Tensor) else repr(v))
        fields = ", ".join(f"{f.name}={show(getattr(self, f.name))}"
                           for f in dataclasses.fields(self))
        return f"{type(self).__name__}({fields})"

    @classmethod
    def fit(cls: type[E], x, z=None, **kwargs) -> E:
        """Fit on one batch of data in one call (see the matching fitter for the options)."""
        if cls.fitter is None:
            raise NotImplementedError(f"{cls.__name__} has no fitter")
        return cls.fitter.fit(x, z, **kwargs).eraser

    def __call__(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        if self.requires_labels and z is None:
            raise LabelError(f"{type(self).__name__} needs the labels z at apply time")
        x = check.as_tensor(x, "x")
        out = self._apply(self._input(x), z)
        return self._output(out, x)

    @staticmethod
    def _output(out: Tensor, x: Tensor) -> Tensor:
        """`out` in x's shape, and in x's dtype when that is floating point."""
        return out.to(x.dtype if x.is_floating_point() else out.dtype).reshape(x.shape)

    def _apply(self, x: Tensor, z: Tensor | None) -> Tensor:
        raise NotImplementedError

    @property
    def dim(self) -> int | None:
        """Width d of the inputs this eraser accepts (None: any)."""
        return None

    def _tensors(self) -> dict[str, Tensor]:
        return {f.name: v for f in dataclasses.fields(self)
                if isinstance(v := getattr(self, f.name), Tensor)}

    @property
    def device(self) -> torch.device | None:
        tensors = self._tensors()
        return next(iter(tensors.values())).device if tensors else None

    def _input(self, x) -> Tensor:
        x = check.as_tensor(x, "x")
        flat = check.features(x, "x", self.dim, min_ndim=1)
        if self.device is not None:
            check.same_device(("x", flat), ("eraser", next(iter(self._tensors().values()))))
        return flat.to(torch.promote_types(flat.dtype, torch.float32))

    def to(self: E, device=None, dtype: torch.dtype | None = None) -> E:
        """A copy with every tensor moved to `device` and/or cast to `dtype`."""
        return self.replace(**{k: v.to(device=device, dtype=dtype if v.is_floating_point()
                                       else None) for k, v in self._tensors().items()})

    def replace(self: E, **changes: Any) -> E:
        """A copy with some fields changed; `__init__` is bypassed so custom ones are safe."""
        new = object.__new__(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(new, f.name, changes.get(f.name, getattr(self, f.name)))
        return new

    def broadcast(self: E, src: int = 0, group=None) -> E:
        """A copy holding rank `src`'s fields, on every rank of `group` (torch.distributed).

        Ranks that merged the same statistics compute erasers equal up to rounding: on CPU,
        BLAS/LAPACK results can depend on memory alignment. This makes them bit-identical.
        Every rank calls it with an eraser of the same kind and shapes; a no-op on one
        process (returns self).
        """
        from .. import distributed

        if not distributed.active(group):
            return self
        tensors = {k: distributed.broadcast_(v.clone(), src, group)
                   for k, v in self._tensors().items()}
        others = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in tensors}
        return self.replace(**tensors, **distributed.broadcast_object(others, src, group))

    def save(self, path) -> None:
        """Write to a safetensors file with a versioned JSON header (`featurebias.erasure.load`)."""
        from .io import save

        save(self, path)


class Fitter:
    """Streaming statistics for one eraser family: `update(x, z)` batches, then `.eraser`."""

    eraser_class: ClassVar[type[Eraser]]

    def __init__(self):
        self._eraser: Eraser | None = None

    @property
    def eraser(self) -> Eraser:
        """The eraser for the data seen so far (computed once, refreshed after `update`)."""
        if self._eraser is None:
            self._eraser = self._compute()
        return self._eraser

    def _compute(self) -> Eraser:
        raise NotImplementedError

    def _statistics(self) -> dict:
        """Every `Moments` this fitter holds, by name (overridden where there are several)."""
        return {"stats": self.stats}

    def _set_statistics(self, stats: dict) -> None:
        self.stats = stats["stats"]

    def merge(self, other: Fitter) -> Fitter:
        """Fold in the statistics of another fitter of the same kind, fitted on other data.

        Exact for any shard sizes (Chan et al.), so fitting shards separately and merging
        equals fitting on the whole: the basis of distributed fitting. Returns self.
        """
        if type(other) is not type(self):
            raise ConfigError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        mine, theirs = self._statistics(), other._statistics()
        for key, stats in mine.items():
            # Same shapes, and the same co-moments tracked (an orth LEACE keeps no M_xx).
            layout, other_layout = (
                {k: None if v is None else tuple(v.shape) for k, v in m._fields().items()}
                for m in (stats, theirs[key]))
            if layout != other_layout:
                raise ConfigError(f"cannot merge {type(self).__name__}s fitted with different "
                                  f"settings: statistics {other_layout} into {layout}")
        self._set_statistics({key: stats.merge(theirs[key].to_like(stats))
                              for key, stats in mine.items()})
        self._eraser = None
        return self

    def all_reduce(self, group=None) -> Fitter:
        """Merge the statistics of every rank of `group` (torch.distributed) in place.

        Each rank updates its fitter on its own shard of the data, of any size (none
        included); afterwards every rank holds the statistics of all the data, bit-identical
        across ranks, so `.eraser` equals the one fitted on one process (up to rounding) and
        is the same on every rank. Every rank must call it (a collective). Exact for unequal
        shards (`Moments.all_reduce`). A no-op on one process. Returns self.
        """
        merged = {key: stats.all_reduce(group) for key, stats in self._statistics().items()}
        self._set_statistics(merged)
        self._eraser = None
        return self

    def _require(self, n: int, minimum: int = 2) -> None:
        if n < minimum:
            raise NotFittedError(f"{type(self).__name__} has seen {n} samples; "
                                 f"it needs at least {minimum} (call update first)")


def check_two_classes(ids: Tensor, num_classes: int, name: str = "z") -> None:
    """Raise unless at least two classes occur (erasing a constant concept is meaningless)."""
    present = int((torch.bincount(ids, minlength=num_classes) > 0).sum())
    if present < 2:
        raise LabelError(f"{name} holds only one class; expected at least two classes")


class LabelMatrixFitter(Fitter):
    """A fitter of global moments of `x` and a label matrix `z` (LEACE, Oracle)."""

    def __init__(self, x_dim: int, z_dim: int, *, shrinkage: bool, svd_tol: float,
                 dtype: torch.dtype):
        super().__init__()
        check.float_dtype(dtype)
        x_dim, z_dim = check.positive_int(x_dim, "x_dim"), check.positive_int(z_dim, "z_dim")
        if not svd_tol > 0:
            raise ConfigError(f"svd_tol must be > 0, got {svd_tol!r}")
        self.x_dim, self.z_dim = x_dim, z_dim
        self.shrinkage, self.svd_tol = shrinkage, svd_tol
        self.stats = None  # set by the subclass

    @classmethod
    def fit(cls, x, z, **kwargs):
        """Fitter updated with one batch; `z_dim` is inferred from z when not given.

        Integer labels `[n]` are class ids (one-hot, `z_dim = max + 1`, at least two classes);
        float labels are `[n]` (one column) or `[n, m]`.
        """
        leading = check.as_tensor(x, "x").shape[:-1]
        x = check.features(x)
        z = check.as_tensor(z, "z")
        # Integer class ids: [n], or [b, t] for token activations [b, t, d]; an integer
        # [n, 1] column is one concept's values, as before.
        ids = not z.is_floating_point() and (z.ndim == 1 or z.shape == leading)
        if ids:
            if z.numel() and int(z.min()) < 0:
                raise LabelError(f"z holds negative class ids (min {int(z.min())}); expected "
                                 "ids in [0, k)")
            kwargs.setdefault("z_dim", int(z.max()) + 1 if z.numel() else 1)
            check_two_classes(check.class_ids(z, x.shape[0], max(kwargs["z_dim"], 2)),
                              max(kwargs["z_dim"], 2))
        else:
            kwargs.setdefault("z_dim", 1 if z.ndim == 1 else z.shape[-1])
        kwargs.setdefault("device", x.device)
        return cls(x.shape[-1], **kwargs).update(x, z)

    @torch.no_grad()
    def update(self, x, z):
        """Fold in a batch `x [..., d]` with labels z (ids or `[..., m]`); returns self."""
        x = check.features(x, "x", self.x_dim)
        z = check.label_matrix(z, x.shape[0], self.z_dim)
        check.same_device(("x", x), ("z", z), ("statistics", self.stats.mean_x))
        self.stats.update(x, z)
        self._eraser = None
        return self
