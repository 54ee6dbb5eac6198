"""Training-loop speed: featurebias `train` against a bare hand-written PyTorch loop.

Run: `.venv/bin/python benchmarks/training.py [--quick] [--device cuda] [--out PATH]`.

Both loops train the same seeded MLP (`d → hidden → k`, ReLU; the toolkit's `mlp`) on the same
data (`n` rows of width `d`, labels from a fixed linear teacher) with AdamW, batches of
`batch_size` drawn by a seeded permutation per epoch, for `steps` steps. Two scenarios:

- `no_val`: no validation set. `train` evaluates at step 0 and the last step only
  (`eval_every = steps`), which costs two reads of its on-device training sums; the bare loop
  does no bookkeeping at all.
- `val_every_<e>`: a validation set of `n_val` rows, evaluated every `eval_every` steps and at
  step 0 in `torch.no_grad()` batches of 1024 by both loops (loss and accuracy read to the
  host, as a curve needs them).

The bare loop is a lean one: it indexes batches with `index_select` (several times faster
than `x[index]` on the CPU), as `train` does, so the ratio measures the loop's bookkeeping
(the per-feature loss and accuracy sums it keeps on the device, the schedule, the checks)
rather than an indexing difference.

Timed: one whole training run, model construction and `train`'s input checks included; the
runs alternate between the loops, one warm-up each, and the median of `repeats` is kept, in
wall-clock seconds (`time.perf_counter`) and, on the CPU, in this process's CPU seconds
(`time.process_time`), which the other processes of a shared machine do not inflate.
Reported: seconds, steps per second and the overhead ratio (featurebias time / bare time;
goal ≤ 1.10). One torch thread by default: on a shared machine, multi-threaded kernels wait
on descheduled threads by amounts that vary from run to run. The load average before and
after is recorded.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from featurebias.models import mlp
from featurebias.training import TrainConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class Config:
    """Problem sizes, training settings and repeat counts."""

    n: int = 8192
    n_val: int = 2048
    d: int = 784
    hidden: tuple[int, ...] = (256, 256)
    k: int = 10
    batch_size: int = 128
    steps: int = 400
    eval_every: int = 100
    lr: float = 1e-3
    repeats: int = 7
    threads: int = 1
    seed: int = 0


QUICK = Config(n=512, n_val=128, d=32, hidden=(16, 16), k=3, batch_size=32, steps=20,
               eval_every=10, repeats=1)


def make_data(cfg: Config, device: str) -> tuple[tuple, tuple]:
    """`(x, y)` training and validation pairs on `device`: Gaussian inputs, teacher labels."""
    g = torch.Generator().manual_seed(cfg.seed)
    teacher = torch.randn(cfg.d, cfg.k, generator=g)
    x = torch.randn(cfg.n + cfg.n_val, cfg.d, generator=g)
    y = (x @ teacher).argmax(1)
    x, y = x.to(device), y.to(device)
    return (x[:cfg.n], y[:cfg.n]), (x[cfg.n:], y[cfg.n:])


def bare_loop(cfg: Config, data, val, device: str, eval_every: int | None) -> list[float]:
    """The same training written out by hand; returns the validation losses it read."""
    model = mlp(cfg.d, cfg.hidden, cfg.k, seed=cfg.seed).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    x, y = data
    g = torch.Generator().manual_seed(cfg.seed)
    per_epoch, size = cfg.n // cfg.batch_size, cfg.batch_size
    curve = []

    def evaluate():
        model.eval()
        with torch.no_grad():
            loss = correct = 0
            for start in range(0, val[0].shape[0], 1024):
                out = model(val[0][start:start + 1024])
                target = val[1][start:start + 1024]
                loss = loss + F.cross_entropy(out, target, reduction="sum")
                correct = correct + (out.argmax(1) == target).sum()
        model.train()
        n_val = val[0].shape[0]
        accuracy = int(correct) / n_val  # read as a curve would, then unused
        curve.append(float(loss) / n_val + 0 * accuracy)

    if eval_every:
        evaluate()
    step = 0
    while step < cfg.steps:
        order = torch.randperm(cfg.n, generator=g).to(device)
        for i in range(per_epoch):
            index = order[i * size:(i + 1) * size]
            loss = F.cross_entropy(model(x.index_select(0, index)), y.index_select(0, index))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if eval_every and (step % eval_every == 0 or step == cfg.steps):
                evaluate()
            if step == cfg.steps:
                break
    return curve


def ours(cfg: Config, data, val, device: str, eval_every: int | None):
    model = mlp(cfg.d, cfg.hidden, cfg.k, seed=cfg.seed).to(device)
    config = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                         eval_every=eval_every or cfg.steps, seed=cfg.seed)
    return train(model, data, config, val if eval_every else None, progress=False)


def timed(fns: list, repeats: int) -> list[tuple[float, float]]:
    """Median (wall, CPU) seconds of each `fn()` over `repeats` alternating runs, after a
    warm-up run of each. CPU time is this process's: on a shared machine it is not inflated
    by other processes' load, which wall time is (with one thread the two otherwise agree)."""
    for fn in fns:
        fn()
    records: list[list[tuple[float, float]]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, records, strict=True):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            record.append((time.perf_counter() - wall, time.process_time() - cpu))
    return [(statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
            for r in records]


def run(cfg: Config, device: str) -> list[dict]:
    data, val = make_data(cfg, device)
    cuda = device.startswith("cuda")
    rows = []
    for eval_every in (None, cfg.eval_every):
        def run_ours(eval_every=eval_every):
            ours(cfg, data, val, device, eval_every)
            if cuda:
                torch.cuda.synchronize()

        def run_bare(eval_every=eval_every):
            bare_loop(cfg, data, val, device, eval_every)
            if cuda:
                torch.cuda.synchronize()

        (ours_s, ours_cpu), (bare_s, bare_cpu) = timed([run_ours, run_bare], cfg.repeats)
        # same data, order, model and optimiser: the validation curves agree
        mine = ours(cfg, data, val, device, eval_every).curves
        mine = mine[(mine["split"] == "val") & (mine["feature"] == "all")]["loss"].tolist()
        theirs = bare_loop(cfg, data, val, device, eval_every)
        diff = max((abs(a - b) for a, b in zip(mine, theirs, strict=True)), default=0.0)
        row = {"scenario": "no_val" if eval_every is None else f"val_every_{eval_every}",
               "featurebias_s": ours_s, "bare_s": bare_s,
               "featurebias_steps_per_s": cfg.steps / ours_s,
               "bare_steps_per_s": cfg.steps / bare_s, "overhead_ratio": ours_s / bare_s}
        if not cuda:  # CPU time says nothing about asynchronous GPU work
            row.update({"featurebias_cpu_s": ours_cpu, "bare_cpu_s": bare_cpu,
                        "overhead_ratio_cpu_time": ours_cpu / bare_cpu})
        rows.append({**row, "max_abs_val_loss_diff": diff})
    return rows


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the table, write the JSON; returns what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--device", default="cpu", help="where both loops train (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/training[_quick].json)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    if args.threads is not None:
        cfg = dataclasses.replace(cfg, threads=args.threads)
    out = args.out or RESULTS / ("training_quick.json" if args.quick else "training.json")
    load_before = os.getloadavg()
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        rows = run(cfg, args.device)
        env = environment()
    finally:
        torch.set_num_threads(torch_threads)
    result = {"config": dataclasses.asdict(cfg), "quick": args.quick, "device_used": args.device,
              **env, "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "rows": rows}
    print(f"n={cfg.n} d={cfg.d} hidden={cfg.hidden} k={cfg.k} batch={cfg.batch_size} "
          f"steps={cfg.steps} | torch {result['torch']} ({args.device}), {cfg.threads} "
          f"thread(s), load {load_before[0]:.2f} -> {result['load_average_after'][0]:.2f}")
    print(f"{'scenario':<16}{'fb s':>9}{'bare s':>9}{'fb st/s':>10}{'bare st/s':>11}"
          f"{'ratio':>8}{'cpu ratio':>11}")
    for r in rows:
        cpu = f"{r['overhead_ratio_cpu_time']:>10.3f}x" if "bare_cpu_s" in r else ""
        print(f"{r['scenario']:<16}{r['featurebias_s']:>9.3f}{r['bare_s']:>9.3f}"
              f"{r['featurebias_steps_per_s']:>10.1f}{r['bare_steps_per_s']:>11.1f}"
              f"{r['overhead_ratio']:>7.3f}x{cpu}")
    write_results(out, result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
