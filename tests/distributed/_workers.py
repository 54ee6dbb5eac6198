"""What every rank runs under `launch` (module level, so spawned processes can import it).

One launch of three ranks does all the multi-process checks (each start costs seconds): the
results come back to the parent, whose tests compare them with one-process computations.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from featurebias import distributed
from featurebias.erasure import (
    AlfQleaceFitter,
    LeaceFitter,
    Moments,
    OracleFitter,
    QuadraticFitter,
)

from . import _data
from ._launch import regroup

FITTERS = {
    "leace": lambda: LeaceFitter(_data.D, _data.K),
    "orth": lambda: LeaceFitter(_data.D, _data.K, method="orth"),
    "oracle": lambda: OracleFitter(_data.D, _data.K),
    "qleace": lambda: QuadraticFitter(_data.D, _data.K),
    "alf-qleace": lambda: AlfQleaceFitter(_data.D, _data.K, target_erasure=0.5),
}
TRAIN_STEPS = 12


def everything(folder: str) -> dict:
    """Every check's raw results on this rank (3 ranks; training on the first 2)."""
    out = {"rank": distributed.rank(), "world": distributed.world_size()}
    out["fitters"] = fitters(_data.SHARDS)
    out["fitters_empty_rank"] = fitters((1000, 0, 527), names=("leace", "qleace"))
    out["cka"] = cka()
    out["variance"] = variance()
    out["fit_erasers"] = fit_erasers()
    out["collect"] = collect(Path(folder) / "acts")
    out["errors"] = errors()
    out["jobs"] = jobs()
    if regroup(2):
        out["train"] = train()
    return out


def fitters(sizes, names=tuple(FITTERS)) -> dict:
    """Each fitter updated on this rank's shard in chunks of 300, then all-reduced."""
    r = distributed.rank()
    x, z = _data.problem()
    x, z = _data.shard(x, r, sizes), _data.shard(z, r, sizes)
    out = {}
    for name in names:
        fitter = FITTERS[name]()
        for xs, zs in zip(x.split(300), z.split(300), strict=True):
            if xs.shape[0]:  # an empty rank updates nothing and still joins the merge
                fitter.update(xs, zs)
        returned = fitter.all_reduce()
        out[name] = {"same_object": returned is fitter, "eraser": fitter.eraser,
                     "shared": fitter.eraser.broadcast(),
                     "stats": {k: s._fields() for k, s in fitter._statistics().items()}}
    return out


def cka() -> dict:
    """MinibatchCKA over this rank's batches (rank 1 has none), all-reduced."""
    from featurebias.similarity import MinibatchCKA

    acc = MinibatchCKA()
    for batch, owner in zip(_data.cka_batches(), _data.CKA_OWNER, strict=True):
        if owner == distributed.rank():
            acc.update(batch)
    acc.all_reduce()
    return {"matrix": acc.matrix(), "n_batches": acc.n_batches_, "n_samples": acc.n_samples_,
            "names": acc.names}


def variance() -> dict:
    """variance_explained on this rank's rows: in-sample, explicit split, per item, steps."""
    from featurebias.features import variance_explained

    acts, feats = _data.representation()
    acts, feats = _data.shard(acts, distributed.rank()), _data.shard(feats, distributed.rank())
    feats["shape"] = list(feats["shape"])
    split = _data.split_of(len(feats["shape"]))
    kw = dict(distributed=True, progress=False)
    doubled = {k: 2 * v for k, v in acts.items()}
    return {"in_sample": variance_explained(acts, feats, in_sample=True, **kw),
            "split": variance_explained(acts, feats, split=split, **kw),
            "per_item": variance_explained(acts, feats, split=split, per_item=True, **kw),
            "steps": variance_explained({0: acts, 5: doubled}, feats, split=split, **kw)}


def fit_erasers() -> dict:
    """fit_erasers with batches shared over the ranks (a generator, too), per method."""
    from featurebias.hooks import fit_erasers as fit

    model = _data.small_mlp()
    batches, labels = _data.model_batches()
    out = {m: fit(model, batches, labels, _data.SITES, method=m, distributed=True,
                  progress=False) for m in ("leace", "qleace", "alf-qleace")}
    out["sequential"] = fit(model, batches, labels, _data.SITES, sequential=True,
                            distributed=True, progress=False)
    out["generator"] = fit(model, iter(batches), labels, _data.SITES, distributed=True,
                           progress=False)
    # Two batches on three ranks: rank 2 runs none and joins the merge with empty fitters.
    # Labels come with these batches, so no rank walks the others' batches.
    pairs = list(zip(batches, labels.split(list(_data.BATCH_SIZES)), strict=True))[:2]
    out["few_batches"] = fit(model, pairs, None, _data.SITES, num_classes=_data.K,
                             distributed=True, progress=False)
    return out


def collect(folder: Path) -> dict:
    """collect to one shared folder: first 4 batches, then all 7 (resumes), then all again."""
    from featurebias.hooks import collect as run
    from featurebias.store import ActivationStore

    model = _data.small_mlp()
    batches, _ = _data.model_batches()
    calls = []

    def forward(m, batch):
        calls.append(batch.shape[0])
        return m(batch)

    kw = dict(forward=forward, distributed=True, progress=False)
    counts = {}
    first = run(model, batches[:4], _data.SITES, to=folder, **kw)
    counts["first"] = len(calls)
    full = run(model, batches, _data.SITES, to=folder, **kw)
    counts["resumed"] = len(calls) - counts["first"]
    again = run(model, batches, _data.SITES, to=folder, **kw)
    counts["again"] = len(calls) - counts["first"] - counts["resumed"]
    memory = run(model, iter(batches), _data.SITES, distributed=True, progress=False)
    reopened = ActivationStore.open(folder)
    return {"first_completed": sorted(first.completed), "calls": counts,
            "full": full.to_dict(), "reopened": reopened.to_dict(),
            "completed": sorted(reopened.completed), "again_completed": sorted(again.completed),
            "memory": sorted(memory.completed), "memory_rows": memory.to_dict(),
            "entries": sorted(os.listdir(folder))}


def square_unless_rank_1_fails(i: int) -> dict:
    if i == 1 and distributed.rank() == 1:
        raise ValueError("job 1 broke on rank 1")
    return {"value": i * i}


def jobs() -> dict:
    """The torchrun launcher: every rank runs every job; a job failing on one rank fails on all."""
    from featurebias.launch import run_jobs

    frame, failures = run_jobs(square_unless_rank_1_fails, [{"i": i} for i in range(3)],
                               launcher="torchrun", on_error="keep", progress=False)
    return {"values": frame["value"].tolist(), "failed": failures["i"].tolist(),
            "errors": failures["error"].tolist()}


def _error_text(fn) -> str | None:
    try:
        fn()
    except Exception as e:  # the test wants to see what every rank raised
        return f"{type(e).__name__}: {e}"
    return None


def errors() -> dict:
    """What each rank raises when the ranks disagree or one of them fails."""
    from featurebias.similarity import MinibatchCKA

    r = distributed.rank()
    wide = Moments(3 + (r == 2), 1)
    fitter = LeaceFitter(4, 2 + (r == 1)).update(torch.randn(5, 4, dtype=torch.float64),
                                                  torch.arange(5) % 2)
    before = fitter.stats.copy()._fields()
    acc = MinibatchCKA().update({"a" if r else "b": torch.randn(6, 3)})

    def fails_on_rank_1():
        with distributed.together("the test step"):
            if r == 1:
                raise ValueError("rank 1 broke")

    return {"moments": _error_text(lambda: wide.all_reduce()),
            "fitter": _error_text(fitter.all_reduce),
            "fitter_unchanged": all(torch.equal(a, b) for a, b in
                                    zip(before.values(), fitter.stats._fields().values(),
                                        strict=True)
                                    if a is not None),
            "cka": _error_text(acc.all_reduce),
            "together": _error_text(fails_on_rank_1),
            "op": _error_text(lambda: distributed.all_reduce(torch.ones(1), op="prod"))}


def train() -> dict:
    """2-rank DDP training: a float64 MLP, and a sequence model with masked targets."""
    from featurebias.training import TrainConfig
    from featurebias.training import train as fit

    out = {}
    x, y = _data.classification()
    model = _data.tiny_mlp()
    # A different start on rank 1: DDP must start every rank from rank 0's parameters.
    if distributed.rank() == 1:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    config = TrainConfig(steps=TRAIN_STEPS, batch_size=32, lr=0.05, eval_every=4, seed=3)
    result = fit(model, (x[:64], y[:64]), config, val=(x[64:], y[64:]), progress=False)
    out["mlp"] = {"state": model.state_dict(), "curves": result.curves,
                  "wrapped": type(result.model).__name__}
    xs, ys = _data.sequences()
    seq = _data.TokenModel()
    config = TrainConfig(steps=8, batch_size=16, optimizer="sgd", lr=0.5, eval_every=4)
    result = fit(seq, (xs, ys), config, progress=False)
    out["sequence"] = {"state": seq.state_dict(), "curves": result.curves}
    odd = TrainConfig(steps=2, batch_size=15)
    out["odd_batch"] = _error_text(lambda: fit(_data.tiny_mlp(), (x, y), odd, progress=False))
    return out
