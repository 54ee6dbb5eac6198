"""Training many one-hidden-layer MLP probes at once, on rows of one shared matrix.

Each model has its own training rows, standardisation, class weights, weight decay, seeded
minibatch order and early stop; their weights are stacked so that one batched product per
layer serves all of them. Every model draws what its own fit would draw from its generator
and takes the same AdamW steps, so training them together gives, up to rounding, the models
trained one after the other, with one pass of Python and one kernel per operation per step
instead of one per model. On one CPU thread, where the products are bound by arithmetic,
`probe_sites`' 5 folds train 1.4x faster and a 5 × 5 weight-decay search as fast as one
after the other; a GPU, where small steps are bound by kernel launches, gains the most.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._adamw import AdamW

# Entries of the block `[models, rows, d]` gathered per validation forward pass (~64 MiB in
# float32): the rows per pass shrink as models × d grows.
VALIDATION_BLOCK = 1 << 24


@dataclasses.dataclass(frozen=True)
class Settings:
    hidden: int
    lr: float
    max_epochs: int
    batch_size: int
    validation_fraction: float
    patience: int
    seed: int


@dataclasses.dataclass
class Trained:
    params: dict[str, Tensor]  # w1 [hidden, d], b1 [hidden], w2 [k, hidden], b2 [k]
    n_epochs: int
    best_epoch: int
    validation_loss: list[float]  # nats, one per epoch (empty without early stopping)


def init(d: int, hidden: int, k: int, gen: torch.Generator, dtype, device) -> dict[str, Tensor]:
    """torch.nn.Linear's default initialisation, drawn on the CPU from `gen` (same on GPU)."""
    def uniform(shape, fan_in):
        bound = 1 / math.sqrt(fan_in)
        t = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        return t.to(dtype=dtype, device=device)

    return {"w1": uniform((hidden, d), d), "b1": uniform((hidden,), d),
            "w2": uniform((k, hidden), hidden), "b2": uniform((k,), hidden)}


def forward(params: dict[str, Tensor], z: Tensor) -> Tensor:
    """Logits of one model (`z [n, d]`) or of stacked models (`z [models, n, d]`)."""
    affine = torch.addmm if z.ndim == 2 else torch.baddbmm
    h = torch.relu(affine(params["b1"].unsqueeze(-2), z, params["w1"].mT))
    return affine(params["b2"].unsqueeze(-2), h, params["w2"].mT)


class _Layout:
    """Every model's parameters in one row of a flat tensor `[models, size]`, so that one
    optimiser update serves all; `leaves` views them by name as leaves of autograd (a flat
    leaf sliced inside the graph would cost a zero-filled gradient per slice)."""

    def __init__(self, example: dict[str, Tensor]):
        self.shapes = {name: t.shape for name, t in example.items()}
        self.ends = torch.tensor([t.numel() for t in example.values()]).cumsum(0).tolist()

    def flat(self, models: list[dict[str, Tensor]]) -> Tensor:
        return torch.stack([torch.cat([m[n].flatten() for n in self.shapes]) for m in models])

    def leaves(self, flat: Tensor) -> dict[str, Tensor]:
        """Views of `flat [models, size]` (or of one row) by name, sharing its memory."""
        return {name: flat[..., a:b].unflatten(-1, shape).requires_grad_(flat.ndim == 2)
                for (name, shape), a, b in zip(self.shapes.items(), [0, *self.ends[:-1]],
                                                self.ends, strict=True)}

    def mask(self, names: tuple[str, ...], device) -> Tensor:
        """`[size]`: True on the entries of the parameters `names`."""
        return torch.cat([torch.full((s.numel(),), n in names, device=device)
                          for n, s in self.shapes.items()])


def train(x: Tensor, ids: Tensor, k: int, rows: list[Tensor], mean: Tensor, scale: Tensor,
          class_weight: Tensor | None, decay: Tensor, settings: Settings) -> list[Trained]:
    """Train one model per entry of `rows` (row indices into `x [n, d]` and class ids `ids`).

    Model `j` sees `(x[rows[j]] − mean[j]) / scale[j]`, weights class `c` by
    `class_weight[j, c]` (None: all 1) and decays its weights by `decay[j]`.
    """
    s = settings
    gens = [torch.Generator().manual_seed(int(s.seed)) for _ in rows]
    inits = [init(x.shape[1], s.hidden, k, g, x.dtype, x.device) for g in gens]
    layout = _Layout(inits[0])
    flat = layout.flat(inits)
    train_rows, val_rows = [], []
    for r, g in zip(rows, gens, strict=True):
        order = r[torch.randperm(len(r), generator=g).to(r.device)]
        n_val = math.floor(s.validation_fraction * len(r))
        n_val = n_val if 1 <= n_val < len(r) else 0  # too few rows: no early stopping
        train_rows.append(order[n_val:])
        val_rows.append(order[:n_val])
    weights = (torch.ones(len(rows), k, dtype=x.dtype, device=x.device)
               if class_weight is None else class_weight.to(x.dtype))
    opt = AdamW(flat, lr=s.lr, decay=decay, decayed=layout.mask(("w1", "w2"), x.device))
    m = _Models(list(range(len(rows))), flat, layout, mean, scale, weights, gens, train_rows,
                _padded(val_rows), opt)
    stopping = torch.tensor([len(v) > 0 for v in val_rows], device=x.device)
    best = flat.clone()  # each model's parameters at its lowest validation loss so far
    best_loss = torch.full((len(rows),), math.inf, dtype=torch.float64, device=x.device)
    best_epoch = torch.zeros(len(rows), dtype=torch.long, device=x.device)
    curves: list[list[float]] = [[] for _ in rows]
    finished: dict[int, tuple[Tensor, int]] = {}  # model: (parameters, epochs run)
    for epoch in range(1, s.max_epochs + 1):
        _epoch(x, ids, m, s.batch_size)
        live = torch.tensor(m.ids, device=x.device)
        on = stopping[live]
        if not bool(on.any()):
            continue
        with torch.no_grad():
            loss = _validation_loss(x, ids, m).double()
        better = on & (loss < best_loss[live])
        best_loss[live] = torch.where(better, loss, best_loss[live])
        best_epoch[live] = torch.where(better, epoch, best_epoch[live])
        best[live] = torch.where(better[:, None], m.flat, best[live])
        for j, value in zip(m.ids, loss.tolist(), strict=True):
            if bool(stopping[j]):
                curves[j].append(value)
        done = on & (epoch - best_epoch[live] >= s.patience)
        for j in live[done].tolist():
            finished[j] = (best[j], epoch)
        if bool(done.any()):
            m.keep(~done)
            if not m.ids:
                break
    for slot, j in enumerate(m.ids):  # ran all max_epochs: the best epoch's weights, or the last
        finished[j] = (best[j] if bool(stopping[j]) else m.flat[slot], s.max_epochs)
    return [Trained(layout.leaves(finished[j][0].clone()),
                    finished[j][1], int(best_epoch[j]) if bool(stopping[j]) else finished[j][1],
                    curves[j]) for j in range(len(rows))]


@dataclasses.dataclass
class _Models:
    """The models still training (`ids`: which of the caller's), one row each."""

    ids: list[int]
    flat: Tensor  # [models, size]: every parameter (see `_Layout`)
    layout: _Layout
    mean: Tensor
    scale: Tensor
    weights: Tensor  # [models, k]: class weights
    gens: list[torch.Generator]
    train_rows: list[Tensor]
    val: tuple[Tensor, Tensor]  # padded validation rows and their mask
    opt: AdamW
    params: dict[str, Tensor] = dataclasses.field(init=False)  # leaves viewing `flat`

    def __post_init__(self):
        self.params = self.layout.leaves(self.flat)

    def keep(self, mask: Tensor) -> None:
        slots = mask.nonzero()[:, 0].tolist()
        self.ids = [self.ids[i] for i in slots]
        self.gens = [self.gens[i] for i in slots]
        self.train_rows = [self.train_rows[i] for i in slots]
        self.flat = self.flat[mask]
        self.params = self.layout.leaves(self.flat)
        self.mean, self.scale, self.weights = self.mean[mask], self.scale[mask], self.weights[mask]
        self.val = (self.val[0][mask], self.val[1][mask])
        self.opt.keep(mask)


def _epoch(x: Tensor, ids: Tensor, m: _Models, batch_size: int) -> None:
    """One pass over every model's training rows, in its own fresh random order."""
    order, present = _padded([r[torch.randperm(len(r), generator=g).to(r.device)]
                              for r, g in zip(m.train_rows, m.gens, strict=True)])
    for start in range(0, order.shape[1], batch_size):
        batch, mask = order[:, start:start + batch_size], present[:, start:start + batch_size]
        loss = _mean_loss(x, ids, m, batch, mask).sum()
        grads = torch.autograd.grad(loss, list(m.params.values()))
        m.opt.step(m.flat, torch.cat([g.flatten(1) for g in grads], 1), mask.any(1))


def _mean_loss(x: Tensor, ids: Tensor, m: _Models, rows: Tensor, mask: Tensor) -> Tensor:
    """Each model's class-weighted mean cross-entropy over its `rows [models, r]` (`mask`:
    which are real), as `F.cross_entropy(weight=...)` computes it; 0 for a model with none."""
    total, weight = _loss_sums(x, ids, m, rows, mask)
    return total / weight.clamp_min(torch.finfo(weight.dtype).tiny)


def _loss_sums(x: Tensor, ids: Tensor, m: _Models, rows: Tensor, mask: Tensor
               ) -> tuple[Tensor, Tensor]:
    """Per model: `Σ w_i CE_i` and `Σ w_i` over `rows`, `w_i` the class weight of a real row."""
    labels = ids[rows]
    logits = forward(m.params, (x[rows] - m.mean[:, None]) / m.scale[:, None])
    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
    w = m.weights.gather(1, labels) * mask
    return (w * ce.view_as(w)).sum(1), w.sum(1)


def _validation_loss(x: Tensor, ids: Tensor, m: _Models) -> Tensor:
    """Each model's mean loss on its validation rows, in blocks of `VALIDATION_BLOCK` entries."""
    rows, mask = m.val
    step = max(1, VALIDATION_BLOCK // (len(rows) * x.shape[1]))
    sums = [_loss_sums(x, ids, m, rows[:, i:i + step], mask[:, i:i + step])
            for i in range(0, rows.shape[1], step)]
    total, weight = (torch.stack(parts).sum(0) for parts in zip(*sums, strict=True))
    return total / weight.clamp_min(torch.finfo(weight.dtype).tiny)


def _padded(index_rows: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Ragged 1-D index tensors as `[len, longest]` (padded with row 0) and a mask."""
    lengths = torch.tensor([len(r) for r in index_rows], device=index_rows[0].device)
    padded = torch.nn.utils.rnn.pad_sequence(index_rows, batch_first=True)
    mask = torch.arange(padded.shape[1], device=padded.device) < lengths[:, None]
    return padded, mask

