"""How much a kernel changes: distance, velocity, target alignment (SCIENCE.md §7.4).

Kernels are `[n, n]` (or `[n1, n2]`) matrices, or full NTKs `[n1, n2, o, o]`. `kernel_distance`
and `kernel_velocity` compare full kernels as the `n·o × n·o` matrices they are (Frobenius over
all entries); `kernel_alignment` needs an `n × n` kernel and traces a full one over the outputs.
Everything is computed in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor

from .. import _validate as check
from ..errors import RangeError, ShapeError
from .linearised import Linearised
from .ntk import MODES, PER_LOGIT, empirical_ntk


def _kernel(k, name: str) -> Tensor:
    k = check.as_tensor(k, name)
    if k.ndim not in (2, 4) or (k.ndim == 4 and k.shape[2] != k.shape[3]):
        raise ShapeError(f"{name} must be a kernel [n1, n2] or a full kernel [n1, n2, o, o], "
                         f"got shape {tuple(k.shape)}")
    if k.shape[0] < 1 or k.shape[1] < 1:
        raise ShapeError(f"{name} is empty (shape {tuple(k.shape)}); expected at least one "
                         "example on each side")
    if not k.is_floating_point():
        k = k.double()
    check.check_finite(k, name)
    return k.double()


def _norm(k: Tensor, name: str) -> Tensor:
    norm = torch.linalg.vector_norm(k)
    if not bool(norm > 0):
        raise RangeError(f"{name} is zero everywhere; the kernel distance needs a nonzero kernel")
    return norm


def kernel_distance(k1, k2) -> float:
    """`1 − ⟨K1, K2⟩_F / (‖K1‖_F ‖K2‖_F)` (Fort et al. 2020): 0 for `K2 = c·K1`, c > 0.

    Scale-invariant and symmetric; in [0, 1] for positive semi-definite kernels, in [0, 2] in
    general (rounding below 0 is clipped).
    """
    k1, k2 = _kernel(k1, "k1"), _kernel(k2, "k2")
    if k1.shape != k2.shape:
        raise ShapeError(f"k1 has shape {tuple(k1.shape)} but k2 has {tuple(k2.shape)}; "
                         "expected kernels on the same examples")
    check.same_device(("k1", k1), ("k2", k2))
    cosine = (k1 * k2).sum() / (_norm(k1, "k1") * _norm(k2, "k2"))
    return max(0.0, 1.0 - float(cosine))


def kernel_velocity(kernels: Sequence[Tensor] | Tensor,
                    steps: Sequence[int] | Tensor | None = None) -> Tensor:
    """`v = S(K_t, K_t') / (t' − t)` between consecutive kernels of a run.

    Args:
        kernels: `T ≥ 2` kernels of one shape, as a sequence or stacked `[T, ...]`.
        steps: their strictly increasing training steps (default 0, 1, ..., T − 1).

    Returns:
        float64 `[T − 1]`; entry i is the velocity from `steps[i]` to `steps[i + 1]`.
    """
    if isinstance(kernels, Tensor):
        if kernels.ndim not in (3, 5):
            raise ShapeError(f"stacked kernels must be [T, n1, n2] or [T, n1, n2, o, o], got "
                             f"shape {tuple(kernels.shape)}")
        kernels = list(kernels.unbind(0))
    kernels = list(kernels)
    if len(kernels) < 2:
        raise ShapeError(f"kernel_velocity needs at least 2 kernels, got {len(kernels)}")
    t = len(kernels)
    steps = torch.arange(t) if steps is None else check.as_tensor(steps, "steps")
    if steps.ndim != 1 or steps.shape[0] != t:
        raise ShapeError(f"steps must be one step per kernel, [{t}], got shape "
                         f"{tuple(steps.shape)}")
    steps = steps.double()
    gaps = steps.diff()
    if not bool((gaps > 0).all()):
        raise RangeError(f"steps must be strictly increasing, got {steps.tolist()}")
    distances = [kernel_distance(a, b) for a, b in zip(kernels[:-1], kernels[1:], strict=True)]
    return torch.tensor(distances, dtype=torch.float64) / gaps


def _centre(k: Tensor) -> Tensor:
    """`H K H` without forming H: subtract row and column means, add back the grand mean."""
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def kernel_alignment(k, y) -> float:
    """Centred kernel–target alignment `⟨HKH, Y_cY_cᵀ⟩_F / (‖HKH‖_F ‖Y_cY_cᵀ‖_F)`.

    Args:
        k: a square kernel `[n, n]`, or a full kernel `[n, n, o, o]` (traced over the outputs).
        y: integer class ids `[n]` (one-hot encoded), or a target matrix `[n, m]` (one-hot,
            binary or real columns, used as they are); `Y_c = HY`.

    Returns:
        A float in [−1, 1]; 1 when `HKH` is a positive multiple of `Y_cY_cᵀ`.
    """
    k = _kernel(k, "k")
    if k.ndim == 4:
        k = k.diagonal(dim1=2, dim2=3).sum(-1)
    n = k.shape[0]
    if k.shape[1] != n:
        raise ShapeError(f"k must be square (a kernel on one set of examples), got shape "
                         f"{tuple(k.shape)}")
    targets = check.as_tensor(y, "y")
    if targets.ndim == 1 and not targets.is_floating_point():
        ids = check.class_ids(targets, n, max(int(targets.max()) + 1 if n else 1, 1), "y")
        targets = torch.nn.functional.one_hot(ids)
    elif targets.ndim == 1:
        targets = targets[:, None]
    if targets.ndim != 2 or targets.shape[0] != n:
        raise ShapeError(f"y must be class ids [{n}] or a target matrix [{n}, m] (one row per "
                         f"kernel example), got shape {tuple(targets.shape)}")
    targets = targets.to(device=k.device, dtype=torch.float64)
    check.check_finite(targets, "y")
    yc = targets - targets.mean(0, keepdim=True)
    kc = _centre(k)
    # ⟨HKH, Y_cY_cᵀ⟩ = tr(Y_cᵀ K_c Y_c) and ‖Y_cY_cᵀ‖_F = ‖Y_cᵀY_c‖_F: nothing n×n from Y.
    inner = (yc * (kc @ yc)).sum()
    target_norm = torch.linalg.matrix_norm(yc.T @ yc)
    if not bool(target_norm > 0):
        raise RangeError("y is constant over the examples; the alignment needs targets that "
                         "vary")
    return float(inner / (_norm(kc, "the centred kernel") * target_norm))


class KernelLogger:
    """Training callback: the empirical NTK on a fixed probe batch at chosen steps.

    At each logged step it records the kernel's distance to the first logged kernel (the
    initial one, step 0 of a run) and its relative change `‖K_t − K₀‖_F / ‖K₀‖_F`, the
    velocity since the previous logged kernel, the centred kernel–target alignment (when
    `targets` are given) and the model's re-linearisations so far (`Linearised.
    relinearisations`; 0 for a plain model). For a `Linearised` model the kernel is that of
    `f_lin`, the network's NTK at θ_lin, so it changes only at feature updates.

    One logger follows one run: at step 0 again, or when the steps go back (the logger is passed
    to another run), it starts a fresh log, and `rows` and `kernels` hold the new run only.

    Args:
        probe_x: the probe batch `[n, ...]`, moved to the model's device when used.
        every: log at the multiples of `every` (step 0 included); unused when `steps` is given.
        steps: the steps to log; step 0, the reference, is always logged.
        mode, per_logit, chunk_size: passed to `empirical_ntk`.
        targets: class ids `[n]` or a target matrix `[n, m]` of the probe examples, for the
            alignment (NaN without them).
        keep_kernels: keep every logged kernel (on the CPU) in `kernels`, keyed by step.
    """

    def __init__(self, probe_x, *, every: int = 100, steps: Sequence[int] | None = None,
                 mode: str = "ntk_vp", per_logit: str = "trace", targets=None,
                 chunk_size: int | None = None, keep_kernels: bool = True):
        probe_x = check.as_tensor(probe_x, "probe_x")
        if probe_x.ndim < 1 or probe_x.shape[0] < 1:
            raise ShapeError(f"probe_x must be a batch [n, ...] with n >= 1, got shape "
                             f"{tuple(probe_x.shape)}")
        check.check_finite(probe_x, "probe_x")
        self.every = check.positive_int(every, "every")
        if steps is not None:
            steps = {check.positive_int(s, "steps[i]", minimum=0) for s in steps}
        self.steps = None if steps is None else frozenset(steps | {0})
        self.mode = check.choice(mode, "mode", MODES)
        self.per_logit = check.choice(per_logit, "per_logit", PER_LOGIT)
        if chunk_size is not None:
            check.positive_int(chunk_size, "chunk_size")
        self.chunk_size = chunk_size
        if targets is not None:
            targets = check.as_tensor(targets, "targets")
            if targets.ndim not in (1, 2) or targets.shape[0] != probe_x.shape[0]:
                raise ShapeError(f"targets must be [{probe_x.shape[0]}] or "
                                 f"[{probe_x.shape[0]}, m] (one row per probe example), got "
                                 f"shape {tuple(targets.shape)}")
        self.probe_x, self.targets, self.keep_kernels = probe_x, targets, bool(keep_kernels)
        self.kernels: dict[int, Tensor] = {}
        self.rows: list[dict] = []
        self._first: Tensor | None = None
        self._last: tuple[int, Tensor] | None = None

    def wants(self, step: int) -> bool:
        """Whether `step` is logged."""
        return step in self.steps if self.steps is not None else step % self.every == 0

    def __call__(self, state) -> None:
        step = int(state.step)
        if self._last is not None and (step < self._last[0] or step == 0):  # a new run
            self.kernels, self.rows, self._first, self._last = {}, [], None, None
        if not self.wants(step) or (self._last is not None and step == self._last[0]):
            return
        model = state.model
        like = next(iter(model.parameters()))
        x = self.probe_x.to(like.device)
        k = empirical_ntk(model, x, mode=self.mode, per_logit=self.per_logit,
                          chunk_size=self.chunk_size, progress=False).double()
        if self._first is None:
            self._first = k
        nan = float("nan")
        velocity = nan if self._last is None else \
            kernel_distance(self._last[1], k) / (step - self._last[0])
        alignment = nan if self.targets is None else kernel_alignment(k, self.targets)
        change = float(torch.linalg.vector_norm(k - self._first)
                       / torch.linalg.vector_norm(self._first))
        self.rows.append({
            "step": step, "kernel_distance": kernel_distance(self._first, k),
            "relative_change": change, "kernel_velocity": velocity, "alignment": alignment,
            "relinearisations": model.relinearisations if isinstance(model, Linearised) else 0,
        })
        self._last = (step, k)
        if self.keep_kernels:
            self.kernels[step] = k.cpu()

    @property
    def frame(self) -> pd.DataFrame:
        """One row per logged step: `step`, `kernel_distance`, `relative_change`,
        `kernel_velocity`, `alignment`, `relinearisations`."""
        columns = ["step", "kernel_distance", "relative_change", "kernel_velocity", "alignment",
                   "relinearisations"]
        return pd.DataFrame(self.rows, columns=columns)
