"""Online (prequential) code length, and MDL probing with it (Voita & Titov 2020).

SCIENCE §4.1 and §9.3: the first block is sent with the uniform code, `log2 K` bits per
example; every later block is sent with a model trained from scratch on all examples before
it. `online_codelength` is the model-agnostic core (the training module reuses it with any
network); `mdl_probe` plugs a probe into it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from torch import Tensor

from .. import _validate as check
from .._progress import tqdm
from ..errors import ConfigError, LabelError, NonFiniteError, ShapeError
from . import _data
from .linear import LinearProbe

# Voita & Titov's block ends: 0.1, 0.2, 0.4, ..., 50, 100 % of the data.
VOITA_FRACTIONS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)


@dataclasses.dataclass(frozen=True, eq=False)
class OnlineCode:
    """An online code: its length, the uniform code's, and one row per block."""

    codelength_bits: float
    uniform_bits: float  # n · log2(num_classes)
    num_classes: int
    n: int
    blocks: pd.DataFrame  # block, start, end, size, bits, bits_per_example, coder

    @property
    def compression(self) -> float:
        """`uniform_bits / codelength_bits` (1: nothing learned; higher: more structure)."""
        return self.uniform_bits / self.codelength_bits

    @property
    def kbits(self) -> float:
        return self.codelength_bits / 1024

    def to_frame(self) -> pd.DataFrame:
        """One row: codelength_bits, kbits, uniform_bits, compression, num_classes, n."""
        return pd.DataFrame([{"codelength_bits": self.codelength_bits, "kbits": self.kbits,
                              "uniform_bits": self.uniform_bits,
                              "compression": self.compression,
                              "num_classes": self.num_classes, "n": self.n}])


def block_boundaries(n: int, fractions: Sequence[float] = VOITA_FRACTIONS) -> list[int]:
    """Block ends `t_1 < … < t_m = n`: `round(f · n)`, at least 1, bumped to strictly increase."""
    check.positive_int(n, "n")
    fractions = [float(f) for f in fractions]
    if (not fractions or any(not 0 < f <= 1 for f in fractions) or fractions[-1] != 1.0
            or any(b <= a for a, b in zip(fractions, fractions[1:], strict=False))):
        raise ConfigError(f"fractions must increase strictly within (0, 1] and end at 1.0, got "
                          f"{fractions}")
    if n < len(fractions):
        raise ConfigError(f"{len(fractions)} blocks need at least {len(fractions)} examples "
                          f"(one per block), got n={n}")
    ends: list[int] = []
    for f in fractions[:-1]:
        ends.append(max(math.floor(f * n + 0.5), 1, ends[-1] + 1 if ends else 1))
    ends.append(n)
    # Bumping may have pushed the last few past n: pull them back to leave one per block.
    for i in range(len(ends) - 2, -1, -1):
        ends[i] = min(ends[i], ends[i + 1] - 1)
    return ends


def online_codelength(code_block: Callable[[int, int], object], boundaries: Sequence[int],
                      num_classes: int, *, progress: bool = True) -> OnlineCode:
    """Prequential code length of `boundaries[-1]` examples, in bits.

    Args:
        code_block: `code_block(start, end)` trains a fresh model on examples `[0, start)`
            (in the caller's fixed order) and returns the code length in nats of each example
            in `[start, end)`, i.e. `−ln p(y_j | x_j)`, as an array `[end − start]`.
        boundaries: block ends `t_1 < … < t_m = n` (see `block_boundaries`); the first block
            `[0, t_1)` costs `t_1 · log2 K` bits.
        num_classes: K, the size of the label alphabet.
    """
    check.positive_int(num_classes, "num_classes", minimum=2)
    ends = [int(t) for t in boundaries]
    if not ends or ends[0] < 1 or any(b <= a for a, b in zip(ends, ends[1:], strict=False)):
        raise ConfigError(f"boundaries must be increasing ints >= 1, got {list(boundaries)}")
    log2k = math.log2(num_classes)
    blocks = [{"block": 0, "start": 0, "end": ends[0], "size": ends[0],
               "bits": ends[0] * log2k, "coder": "uniform"}]
    for i, (start, end) in enumerate(tqdm(list(zip(ends, ends[1:], strict=False)),
                                          desc="online code", disable=not progress), 1):
        nats = _block_nats(code_block(start, end), end - start, start)
        blocks.append({"block": i, "start": start, "end": end, "size": end - start,
                       "bits": float(nats.sum()) / math.log(2), "coder": "model"})
    table = pd.DataFrame(blocks)
    table["bits_per_example"] = table["bits"] / table["size"]
    table = table[["block", "start", "end", "size", "bits", "bits_per_example", "coder"]]
    n = ends[-1]
    return OnlineCode(float(table["bits"].sum()), n * log2k, num_classes, n, table)


def _block_nats(value, size: int, start: int) -> Tensor:
    nats = value.detach() if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))
    nats = nats.to(device="cpu", dtype=torch.float64).reshape(-1)
    if nats.numel() != size:
        raise ShapeError(f"code_block({start}, ...) returned {nats.numel()} code lengths; "
                         f"expected one per example of the block ({size})")
    if not bool(torch.isfinite(nats).all()):
        raise NonFiniteError(f"code_block({start}, ...) returned non-finite code lengths: the "
                             "model gave some example probability 0; smooth its predictions")
    return nats


def mdl_probe(x, y, probe=None, fractions: Sequence[float] = VOITA_FRACTIONS, *, seed: int = 0,
              progress: bool = True) -> OnlineCode:
    """Online code length of labels `y` given representations `x`, with `probe` as the model.

    Rows are put in a seeded random order; block `i` is coded by a fresh clone of `probe`
    (default `LinearProbe()`) fitted on all earlier rows. K is the number of distinct labels.

    Tiny early blocks: a block whose training rows hold one class only (or constant `x`, or
    too few rows of some class for the probe, e.g. one that picks `C` by cross-validation) is
    coded with the add-one (Laplace) estimate `(n_c + 1) / (t + K)` of those rows' label
    frequencies, which never gives probability 0. When the training rows miss some classes,
    each missing class gets that same add-one probability `1 / (t + K)` and the probe's
    distribution is scaled to the remaining mass. The block table's `coder` column says
    which coder sent each block (`uniform`, `probe`, `probe+add-one` or `add-one`).
    """
    probe = LinearProbe() if probe is None else probe
    x, classes, ids = _data.fit_inputs(x, y)
    n, k = len(ids), len(classes)
    ends = block_boundaries(n, fractions)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    order = order.to(x.device)
    x, ids = x[order], ids[order]
    coders: dict[int, str] = {}

    def code_block(start: int, end: int) -> Tensor:
        counts = torch.bincount(ids[:start], minlength=k).double()
        target = ids[start:end, None]
        def add_one() -> Tensor:
            coders[start] = "add-one"
            return -((counts + 1) / (start + k)).log().expand(end - start, k).gather(1, target)

        if int((counts > 0).sum()) < 2 or _data.is_constant(x[:start]):
            return add_one()
        try:
            model = clone(probe).fit(x[:start], classes[ids[:start]])
        except LabelError:  # too few rows of a class for this probe (its CV needs 2 each)
            return add_one()
        logp = _data.full_log_proba(model, x[start:end], classes)
        missing = counts == 0
        coders[start] = "probe"
        if bool(missing.any()):
            coders[start] = "probe+add-one"
            escape = 1.0 / (start + k)
            logp = torch.where(missing, math.log(escape),
                               logp + math.log1p(-float(missing.sum()) * escape))
        return -logp.gather(1, target)

    code = online_codelength(code_block, ends, k, progress=progress)
    coder = ["uniform"] + [coders[start] for start in ends[:-1]]
    return dataclasses.replace(code, blocks=code.blocks.assign(coder=coder))
