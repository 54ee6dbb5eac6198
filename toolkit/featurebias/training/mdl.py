"""Prequential (online) minimum description length of a dataset under a model family.

SCIENCE §4.1. A held-out set of `V = min(2048, ⌊0.2·n⌋)` examples serves early stopping only;
the other N are put in a seeded order and cut at log-spaced boundaries `t₁ < … < t_m = N`.
The first chunk costs the uniform code, `t₁·log₂k` bits; chunk `i+1` is coded by a fresh
model trained on the first `t_i` examples. `L = t₁·log₂k + Σ_i Σ_{j∈(t_i, t_{i+1}]}
−log₂ p_{θ_i}(y_j | x_j)`, and `MDL = L / N` bits per example. The code length itself is
`probes.online_codelength`, shared with MDL probing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .. import _validate as check
from .._progress import tqdm
from ..errors import ConfigError, ShapeError
from ..probes.mdl import OnlineCode, online_codelength
from . import losses
from ._spacing import log_spaced
from .config import TrainConfig
from .loop import probe_output, train

MAX_HELDOUT = 2048
DEFAULT_CONFIG = TrainConfig(steps=1000, batch_size=64, eval_every=50, patience=5)
"""Chunk training when `config` is None: AdamW 1e-3, early stopping after 5 evaluations."""


@dataclasses.dataclass(frozen=True, eq=False)
class MdlResult:
    """A prequential code: its length, the uniform code's, and one curve row per chunk."""

    bits_per_sample: float
    """`L / N`: the MDL in bits per coded example."""
    codelength_bits: float
    """L, in bits."""
    uniform_bits: float
    """`N · log₂k`: the cost of sending every label with the uniform code."""
    num_classes: int
    """k, the size of one example's label alphabet (the product over its features)."""
    n: int
    """N, the number of coded examples."""
    heldout: int
    """V, the examples held out for early stopping."""
    boundaries: tuple[int, ...]
    mdl_reference_weighting: float
    """The reference code's `Σ_i t_{i+1}·CE_i / N` (bits): ranks learning speed, but over-weights
    late chunks and is not a code length (SCIENCE §4.1); for comparison only."""
    curve: pd.DataFrame
    """Per chunk: chunk, train_size, start, end, size, bits, bits_per_sample, coder, steps,
    best_step (the last two for the chunk's model)."""

    @property
    def compression(self) -> float:
        """`uniform_bits / codelength_bits` (1: nothing learned; higher: learned faster)."""
        return self.uniform_bits / self.codelength_bits

    def power_law(self) -> tuple[float, float]:
        """`(a, b)` of the least-squares fit `CE(t) ≈ a·t^{−b}` (log–log) over model chunks."""
        rows = self.curve[self.curve["coder"] == "model"]
        if len(rows) < 2 or not (rows["bits_per_sample"] > 0).all():
            raise ConfigError("a power-law fit needs >= 2 model chunks with positive loss")
        slope, intercept = np.polyfit(np.log(rows["train_size"].to_numpy(float)),
                                      np.log(rows["bits_per_sample"].to_numpy(float)), 1)
        return float(np.exp(intercept)), float(-slope)

    def to_frame(self) -> pd.DataFrame:
        """One row: bits_per_sample, codelength_bits, uniform_bits, compression,
        mdl_reference_weighting, num_classes, n, heldout."""
        return pd.DataFrame([{"bits_per_sample": self.bits_per_sample,
                              "codelength_bits": self.codelength_bits,
                              "uniform_bits": self.uniform_bits, "compression": self.compression,
                              "mdl_reference_weighting": self.mdl_reference_weighting,
                              "num_classes": self.num_classes, "n": self.n,
                              "heldout": self.heldout}])


def prequential_code(boundaries: Sequence[int], num_classes: int,
                     log_probs: Sequence[Tensor]) -> OnlineCode:
    """Code length of chunks whose labels were predicted with the given probabilities.

    Args:
        boundaries: `t₁ < … < t_m = N`; the first chunk `[0, t₁)` costs `t₁·log₂k` bits.
        num_classes: k.
        log_probs: for each later chunk `i = 1 … m−1`, `ln p(y_j | x_j)` of its
            `t_{i+1} − t_i` examples under the model trained on the first `t_i`.

    Returns the `OnlineCode` (bits; `blocks` has one row per chunk, sizes summing to N).
    """
    ends = [int(t) for t in boundaries]
    if len(log_probs) != len(ends) - 1:
        raise ShapeError(f"{len(ends)} boundaries make {len(ends) - 1} model-coded chunks, got "
                         f"log-probabilities for {len(log_probs)}")
    by_start = {start: lp for start, lp in zip(ends[:-1], log_probs, strict=True)}
    return online_codelength(lambda start, end: -torch.as_tensor(by_start[start]),
                             ends, num_classes, progress=False)


def prequential_mdl(model_fn: Callable[[], nn.Module], x, y, *, num_chunks: int = 10,
                    config: TrainConfig | None = None, seed: int = 0,
                    first_chunk: int | None = None,
                    transform: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
                    progress: bool = True) -> MdlResult:
    """Prequential MDL of `(x, y)` for the models `model_fn()` builds (SCIENCE §4.1).

    Args:
        model_fn: zero-argument callable returning a fresh model; called once per chunk under
            a global RNG seeded with `seed`, so models drawn from the global RNG start alike.
        x, y: inputs and targets in any form `train` accepts (single label, `[n, F]` heads,
            or sequences with the same number of targets per example).
        num_chunks: m, the number of chunks (the first one sent with the uniform code).
        config: how each chunk's model is trained (default `DEFAULT_CONFIG`; its `seed` is
            replaced by `seed`, its checkpoints switched off). Early stopping uses the
            held-out examples when `config.patience` is set.
        seed: the held-out split, the example order, the models' initial RNG and the batches.
        first_chunk: t₁; default `min(1024, 2·max(batch_size, k, d))` with k the most classes
            of any feature and d the input size per example.
        transform: applied to every training batch of every chunk model (see `train`); the
            coded chunks and the held-out set are used as given.
    """
    if not callable(model_fn):
        raise ConfigError(f"model_fn must be a zero-argument callable, got {model_fn!r}")
    m = check.positive_int(num_chunks, "num_chunks", minimum=2)
    seed = check.positive_int(seed, "seed", minimum=0)
    config = DEFAULT_CONFIG if config is None else config
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
    config = dataclasses.replace(config, seed=seed, checkpoints=0)
    x, y = check.as_tensor(x, "x"), check.as_tensor(y, "y")
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ShapeError(f"x has shape {tuple(x.shape)} and y {tuple(y.shape)}; expected the "
                         "same number of rows")
    if x.is_floating_point():
        check.check_finite(x, "x")
    n = x.shape[0]
    heldout = min(MAX_HELDOUT, math.floor(0.2 * n))
    if heldout < 1:
        raise ShapeError(f"prequential MDL needs at least 5 examples (one held out), got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_index, coded = order[:heldout].to(x.device), order[heldout:].to(x.device)
    val = (x[val_index], y[val_index])
    x, y = x[coded], y[coded]
    big_n = x.shape[0]

    model = _fresh(model_fn, seed)
    device = next(model.parameters()).device
    targets = losses.resolve(probe_output(model, _as_input(x[:2], model)), y[:2].to(device),
                             heads=config.heads, names=config.feature_names,
                             columns=_columns(y)).to(device)
    losses.check_labels(targets, y, "y")  # the last chunk is coded, never trained on
    losses.check_labels(targets, val[1], "y")
    k = _alphabet(targets, y)
    if first_chunk is None:
        first_chunk = min(1024, 2 * max(config.batch_size, max(targets.classes), x[0].numel()))
    first_chunk = check.positive_int(first_chunk, "first_chunk")
    if big_n - first_chunk < m - 1:
        raise ConfigError(f"{m} chunks from first_chunk={first_chunk} need at least "
                          f"{first_chunk + m - 1} coded examples, got {big_n} (n={n} minus "
                          f"{heldout} held out); lower first_chunk or num_chunks")
    ends = log_spaced(first_chunk, big_n, m)

    log_probs, trained = [], []
    for i, (start, end) in enumerate(tqdm(list(zip(ends, ends[1:], strict=False)),
                                          desc="prequential MDL", disable=not progress)):
        model = model if i == 0 else _fresh(model_fn, seed)
        result = train(model, (x[:start], y[:start]), config, val, transform=transform,
                       progress=False)
        log_probs.append(-_nats(result.model, targets, x[start:end], y[start:end],
                                config.eval_batch_size))
        trained.append((result.steps, result.best_step))
    code = prequential_code(ends, k, log_probs)
    return _result(code, ends, heldout, trained)


def _fresh(model_fn: Callable[[], nn.Module], seed: int) -> nn.Module:
    # manual_seed also reseeds CUDA (model_fn may build there): the device in use is restored;
    # forking every visible device would open a context on each.
    cuda = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        model = model_fn()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model_fn must return a torch.nn.Module, got {type(model).__name__}")
    return model


def _as_input(x: Tensor, model: nn.Module) -> Tensor:
    p = next(model.parameters())
    return x.to(p.device, p.dtype) if x.is_floating_point() else x.to(p.device)


def _columns(y: Tensor) -> Tensor | None:
    return losses.target_columns(y) if y.ndim == 2 and not y.is_floating_point() else None


def _alphabet(targets: losses.Targets, y: Tensor) -> int:
    """k: the number of distinct label tuples one example can carry."""
    if targets.kind != "sequence":
        return math.prod(targets.classes)
    per_example = (y.index_select(1, targets.columns.to(y.device)) != losses.IGNORE).sum(1)
    if int(per_example.min()) != int(per_example.max()):
        raise ConfigError("prequential MDL of sequence targets needs the same number of targets "
                          f"in every example, got between {int(per_example.min())} and "
                          f"{int(per_example.max())}")
    return targets.classes[0] ** int(per_example[0])


def _nats(model: nn.Module, targets: losses.Targets, x: Tensor, y: Tensor,
          batch: int) -> Tensor:
    """`−ln p(y_j | x_j)` of every example under `model` (eval mode), float64 on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch):
                xb = _as_input(x[start:start + batch], model)
                yb = y[start:start + batch].to(device, torch.long)
                out.append(losses.example_nats(targets, model(xb), yb).double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def _result(code: OnlineCode, ends: list[int], heldout: int,
            trained: list[tuple[int, int]]) -> MdlResult:
    blocks = code.blocks
    curve = pd.DataFrame({
        "chunk": blocks["block"], "train_size": [0, *ends[:-1]], "start": blocks["start"],
        "end": blocks["end"], "size": blocks["size"], "bits": blocks["bits"],
        "bits_per_sample": blocks["bits_per_example"],
        "coder": ["uniform"] + ["model"] * (len(ends) - 1),
        "steps": pd.array([None, *(s for s, _ in trained)], dtype="Int64"),
        "best_step": pd.array([None, *(b for _, b in trained)], dtype="Int64"),
    })
    model_rows = curve.iloc[1:]
    # The reference weighting: each chunk's mean loss times the data size after it, over N.
    reference = float((model_rows["end"] * model_rows["bits_per_sample"]).sum()) / code.n
    return MdlResult(code.codelength_bits / code.n, code.codelength_bits, code.uniform_bits,
                     code.num_classes, code.n, heldout, tuple(ends), reference, curve)
