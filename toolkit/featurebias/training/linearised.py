"""Iterative linearisation: train the first-order Taylor model of a network (SCIENCE.md §7.1).

`Linearised(model)` computes `f_lin(x; θ) = f(x; θ_lin) + J(x; θ_lin)(θ − θ_lin)` with one
`torch.func.jvp` (which returns `f(x; θ_lin)` and the tangent together, and never forms `J`).
Its trainable parameters are the wrapped model's, θ; θ_lin is kept as buffers. Back-propagating
through the jvp's tangent gives `J(x; θ_lin)ᵀ ∂ℓ/∂f_lin`, the gradient of the linearised model.

`LinearisedTrainer(every=K)` trains the wrapper with `featurebias.training.train` and sets
θ_lin ← θ every K steps: K = 1 is standard training, `every=None` trains the model linearised
at initialisation (the fixed-NTK, "lazy" regime).

Layers whose training mode is not a fixed function of the parameters (BatchNorm: batch
statistics and running-statistic updates; Dropout: random masks) break both the linearisation
and per-example kernels. With `train_mode="error"` (default) a forward pass with such a layer
in training mode raises `ConfigError`; with `train_mode="eval"` they run in eval mode inside
`f_lin` (BatchNorm normalises with its running statistics, which then never change; no dropout).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp

from .. import _validate as check
from ..errors import ConfigError, ShapeError
from .loop import TrainResult, TrainState, train

TRAIN_MODE_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
TRAIN_MODES = ("error", "eval")

# Phrases of torch.func's errors for ops it cannot transform (old-style autograd.Function,
# missing forward-AD formula or batching rule, random ops under vmap).
_TRANSFORM_HINTS = ("functorch", "forward mode AD", "forward AD", "forward-mode", "jvp",
                    "setup_context", "vmap", "batching rule", "torch.func")


def check_module(model, name: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def trainable_names(model: nn.Module, owner: str) -> tuple[str, ...]:
    """Names of the parameters that require grad (θ); frozen ones stay constants of f."""
    names = tuple(n for n, p in model.named_parameters() if p.requires_grad)
    if not names:
        raise ConfigError(f"{owner}: the model has no parameter that requires grad; expected "
                          "at least one trainable parameter")
    return names


def aliases(model: nn.Module, names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """For each parameter in `names`, one name per module attribute that holds it.

    Tied weights sit in several attributes. A module reachable by several paths (as in
    TransformerLens bridges) is one attribute: functional_call's own tie search would swap it
    once per path and then restore the wrong tensors, replacing the model's parameters.
    """
    places: dict[int, dict[tuple[int, str], str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner)
        places.setdefault(id(p), {}).setdefault((id(module), attr), name)
    params = dict(model.named_parameters())
    return {n: tuple(places[id(params[n])].values()) for n in names}


def substitute(model: nn.Module, aliases: dict[str, tuple[str, ...]],
               values: dict[str, Tensor], args: tuple, kwargs: dict | None = None):
    """`model(*args, **kwargs)` with `values` in place of the parameters (`aliases` keys)."""
    every = {alias: values[name] for name, names in aliases.items() for alias in names}
    return functional_call(model, every, args, kwargs, tie_weights=False)


def train_mode_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, TRAIN_MODE_LAYERS)]


@contextlib.contextmanager
def eval_layers(layers: Sequence[nn.Module], policy: str, owner: str) -> Iterator[None]:
    """Run BatchNorm/Dropout layers in eval mode (`policy="eval"`) or refuse them ("error")."""
    active = [m for m in layers if m.training]
    if active and policy == "error":
        kinds = ", ".join(sorted({type(m).__name__ for m in active}))
        raise ConfigError(f"{owner}: the model has {kinds} in training mode, which makes the "
                          "output depend on the batch or on random masks, not only on the "
                          "parameters; expected model.eval(), or train_mode='eval' to run "
                          "these layers in eval mode")
    for m in active:
        m.train(False)
    try:
        yield
    finally:
        for m in active:
            m.train(True)


@contextlib.contextmanager
def transform_errors(owner: str) -> Iterator[None]:
    """Turn torch.func's 'cannot transform this op' errors into a `ConfigError`."""
    try:
        yield
    except (RuntimeError, NotImplementedError) as e:
        message = str(e)
        if not any(hint in message for hint in _TRANSFORM_HINTS):
            raise
        first = message.strip().splitlines()[0] if message.strip() else type(e).__name__
        raise ConfigError(f"{owner}: the model uses an operation that torch.func cannot "
                          f"differentiate forwards or vectorise ({first}); expected a model "
                          "of standard differentiable ops (custom autograd.Functions need "
                          "setup_context and jvp)") from e


class _Anchor(nn.Module):
    """θ_lin as buffers, one per trainable parameter ('.' in names becomes '-')."""

    def __init__(self, names: Sequence[str], params: dict[str, Tensor]):
        super().__init__()
        for name in names:
            self.register_buffer(name.replace(".", "-"), params[name].detach().clone())

    def values(self, names: Sequence[str]) -> tuple[Tensor, ...]:
        return tuple(getattr(self, n.replace(".", "-")) for n in names)


class Linearised(nn.Module):
    """The first-order Taylor model of `model` around θ_lin, trainable in θ.

    `self.model` carries θ (its parameters are this module's parameters) and is the plain
    network at θ; `self(x)` is `f_lin(x; θ)`, which differs from `self.model(x)` once θ has
    moved away from θ_lin. θ_lin and the relinearisation count are buffers, so `state_dict`,
    checkpoints and restoring a best state keep them consistent with θ.

    Args:
        model: any module `torch.func` can differentiate forwards (its forward may take
            several arguments and must return a tensor).
        train_mode: "error" or "eval": what to do with BatchNorm/Dropout layers in training
            mode (see the module docstring).
    """

    def __init__(self, model: nn.Module, *, train_mode: str = "error"):
        super().__init__()
        check_module(model)
        if isinstance(model, Linearised):
            raise ConfigError("model is already Linearised; expected a plain network (call "
                              "relinearise() to move its linearisation point)")
        self.train_mode = check.choice(train_mode, "train_mode", TRAIN_MODES)
        self._names = trainable_names(model, "Linearised")
        self._aliases = aliases(model, self._names)
        self._layers = train_mode_layers(model)
        self.model = model
        self.anchor = _Anchor(self._names, dict(model.named_parameters()))
        device = next(iter(model.parameters())).device
        self.register_buffer("relinearisation_count",
                             torch.zeros((), dtype=torch.long, device=device))

    @property
    def relinearisations(self) -> int:
        """How many times `relinearise()` moved θ_lin (the initial linearisation not counted)."""
        return int(self.relinearisation_count)

    def anchor_params(self) -> dict[str, Tensor]:
        """θ_lin as `{parameter name: tensor}` (the wrapped model's names)."""
        return dict(zip(self._names, self.anchor.values(self._names), strict=True))

    @torch.no_grad()
    def relinearise(self) -> Linearised:
        """θ_lin ← θ (a feature update); returns self."""
        params = dict(self.model.named_parameters())
        for name, lin in zip(self._names, self.anchor.values(self._names), strict=True):
            lin.copy_(params[name])
        self.relinearisation_count += 1
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        params = dict(self.model.named_parameters())
        primals = self.anchor.values(self._names)
        tangents = tuple(params[n] - lin for n, lin in zip(self._names, primals, strict=True))

        def f(*theta: Tensor) -> Tensor:
            values = dict(zip(self._names, theta, strict=True))
            return substitute(self.model, self._aliases, values, args, kwargs)

        with eval_layers(self._layers, self.train_mode, "Linearised"), \
                transform_errors("Linearised"):
            # jvp returns f(x; θ_lin) with the tangent: one pass gives both terms.
            f0, df = jvp(f, primals, tangents)
        if not isinstance(f0, Tensor):
            raise ConfigError(f"Linearised: the model must return one tensor, got "
                              f"{type(f0).__name__}")
        return f0 + df

    @torch.no_grad()
    def gap(self, *args: Any, **kwargs: Any) -> float:
        """Linearisation gap: root mean over examples of `‖f(x; θ) − f_lin(x; θ)‖₂²`."""
        with eval_layers(self._layers, self.train_mode, "Linearised"):
            exact = self.model(*args, **kwargs)
        diff = (exact - self(*args, **kwargs)).double()
        return float(diff.reshape(diff.shape[0], -1).square().sum(1).mean().sqrt())


def _every(every) -> int | None:
    if every is None or (isinstance(every, float) and math.isinf(every) and every > 0):
        return None
    return check.positive_int(every, "every")


class LinearisedTrainer:
    """Trains `Linearised(model)` with `featurebias.training.train`, θ_lin ← θ every K steps.

    Feature updates happen after steps K, 2K, ... (before the step that follows them), never
    after the last step, so a run of T steps linearises `U = ⌈T/K⌉` times counting the initial
    linearisation at θ₀, and `relinearisations == U − 1`. After each re-linearisation the next
    gradient is the full network's, hence K = 1 reproduces standard training.

    `result.model` is the trained `Linearised` wrapper: calling it evaluates `f_lin` (what the
    training and validation curves measured); `result.model.model` is the plain network at the
    trained θ, whose outputs differ from `f_lin`'s when θ moved since the last feature update.

    Args:
        every: K ≥ 1, or None (or `math.inf`) to never re-linearise.
        reset_optimizer: clear the optimiser's state (momentum, Adam moments and step counts) at
            every re-linearisation, so each linearised problem starts afresh; default False
            keeps it (SCIENCE.md §7.1 [D]). The learning-rate schedule is never reset.
        train_mode: BatchNorm/Dropout policy of `Linearised` ("error" or "eval").
        gap_probe: a batch on which to measure the linearisation gap (`Linearised.gap`) just
            before every re-linearisation and after step `config.steps`; the last run's
            values are in `gaps`.
    """

    def __init__(self, every: int | None, *, reset_optimizer: bool = False,
                 train_mode: str = "error", gap_probe: Tensor | None = None):
        self.every = _every(every)
        if not isinstance(reset_optimizer, bool):
            raise ConfigError(f"reset_optimizer must be a bool, got {reset_optimizer!r}")
        self.reset_optimizer = reset_optimizer
        self.train_mode = check.choice(train_mode, "train_mode", TRAIN_MODES)
        if gap_probe is not None:
            gap_probe = check.as_tensor(gap_probe, "gap_probe")
            if gap_probe.ndim < 1 or gap_probe.shape[0] < 1:
                raise ShapeError(f"gap_probe must be a batch [n, ...] with n >= 1, got shape "
                                 f"{tuple(gap_probe.shape)}")
            check.check_finite(gap_probe, "gap_probe")
        self.gap_probe = gap_probe
        self._gaps: list[dict] = []

    def __repr__(self) -> str:
        return (f"LinearisedTrainer(every={self.every}, reset_optimizer={self.reset_optimizer}, "
                f"train_mode={self.train_mode!r})")

    @property
    def gaps(self) -> pd.DataFrame:
        """The last run's gaps: `step`, `relinearisations` (before that step's update), `gap`."""
        return pd.DataFrame(self._gaps, columns=["step", "relinearisations", "gap"])

    def wrap(self, model: nn.Module) -> Linearised:
        """`model` as a `Linearised` (a `Linearised` is used as it is)."""
        if isinstance(model, Linearised):
            return model
        return Linearised(check_module(model), train_mode=self.train_mode)

    def relinearise_callback(self, model: Linearised) -> Callable[[TrainState], None]:
        """The training callback that performs the feature updates of `model`."""
        every, reset = self.every, self.reset_optimizer
        probe = None if self.gap_probe is None else _like(self.gap_probe, model)

        def relinearise(state: TrainState) -> None:
            last = state.step >= state.config.steps
            update = every is not None and 0 < state.step < state.config.steps \
                and state.step % every == 0
            if probe is not None and (update or last):
                self._gaps.append({"step": state.step, "gap": model.gap(probe),
                                   "relinearisations": model.relinearisations})
            if update:
                model.relinearise()
                if reset:
                    state.optimizer.state.clear()

        return relinearise

    def train(self, model: nn.Module, data, config, val=None, *,
              transform: Callable | None = None, callbacks: Sequence[Callable] = (),
              progress: bool = True) -> TrainResult:
        """Train the linearised model; arguments and result as `featurebias.training.train`.

        The feature-update callback runs before `callbacks`, so a `KernelLogger` sees the
        model already re-linearised at that step.
        """
        wrapped = self.wrap(model)
        if wrapped.train_mode == "error" and wrapped._layers:
            # train() runs the model in training mode: refuse now, before anything changes.
            kinds = ", ".join(sorted({type(m).__name__ for m in wrapped._layers}))
            raise ConfigError(f"LinearisedTrainer: the model has {kinds}, which training mode "
                              "makes depend on the batch or on random masks; expected a model "
                              "without them, or train_mode='eval' to run them in eval mode")
        self._gaps = []
        return train(wrapped, data, config, val, transform=transform,
                     callbacks=(self.relinearise_callback(wrapped), *callbacks),
                     progress=progress)


def _like(x: Tensor, model: nn.Module) -> Tensor:
    """`x` on the model's device; floating inputs in its parameters' dtype."""
    p = next(model.parameters())
    return x.to(p.device, p.dtype) if x.is_floating_point() else x.to(p.device)
