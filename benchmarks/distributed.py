"""LEACE fitting on one process vs. two (torch.distributed, gloo, CPU), and that both agree.

Run: `.venv/bin/python benchmarks/distributed.py [--quick] [--out PATH]`.

What is measured: streaming `n` float32 rows of width `d` with `k` classes through
`LeaceFitter` in chunks of `batch` rows (float64 statistics), merging the ranks' statistics
(`Fitter.all_reduce`) and computing the eraser. Everything runs in one fresh
`torchrun --standalone --nproc-per-node=2` job (the launcher users would use; start-up and
imports are not timed): rank 0 first fits all the data alone with 1, then 2 threads while rank
1 waits at a barrier (the one-process baselines), then both ranks fit half each with 1 thread
and merge. Rank 0 reports wall-clock seconds (`time.perf_counter`) for the chunk updates, the
merge, the eraser and the whole fit.

Data: chunk c of the stream is drawn from a generator seeded with (seed, c) — class means plus
a rank-32 signal plus isotropic noise, so the data are the same whatever the number of ranks;
rank r fits chunks r, r + W, ... (no rank holds all of it: 400k × 1024 float32 is 1.6 GB).
Exactness: the 2-process eraser is compared with the 1-process one on a probe batch and as the
projection P (max abs difference).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SCRIPT = Path(__file__).resolve()


@dataclasses.dataclass(frozen=True)
class Config:
    """Problem size."""

    n: int = 400_000
    d: int = 1024
    k: int = 10
    batch: int = 8192
    seed: int = 0


QUICK = Config(n=6000, d=32, k=3, batch=512)


def chunk(cfg: Config, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunk `c` of the stream: `(x [rows, d] float32, z [rows] class ids)`."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 7)
    means = 2 * torch.randn(cfg.k, cfg.d, generator=g)
    basis = torch.randn(32, cfg.d, generator=g) / 4
    g.manual_seed(cfg.seed * 1_000_003 + 11 + c)
    rows = min(cfg.batch, cfg.n - c * cfg.batch)
    z = torch.randint(0, cfg.k, (rows,), generator=g)
    x = means[z] + torch.randn(rows, 32, generator=g) @ basis + torch.randn(rows, cfg.d,
                                                                            generator=g)
    return x, z


def fit(cfg: Config, chunks: range, merge: bool):
    """Fit the given chunks (then merge over the ranks); the eraser and the seconds spent."""
    from featurebias.erasure import LeaceFitter

    fitter = LeaceFitter(cfg.d, cfg.k)
    start = time.perf_counter()
    update = generate = 0.0
    for c in chunks:
        t0 = time.perf_counter()
        x, z = chunk(cfg, c)
        t1 = time.perf_counter()
        fitter.update(x, z)
        t2 = time.perf_counter()
        generate, update = generate + t1 - t0, update + t2 - t1
    t0 = time.perf_counter()
    if merge:
        fitter.all_reduce()
    t1 = time.perf_counter()
    eraser = fitter.eraser
    t2 = time.perf_counter()
    # The data are drawn on the fly, which is not part of fitting.
    return eraser, {"fit_s": t2 - start - generate, "update_s": update, "reduce_s": t1 - t0,
                    "eraser_s": t2 - t1, "rows": int(fitter.stats.n.sum())}


def worker(cfg: Config, out: Path) -> None:
    """The 2 ranks of the torchrun job: rank 0 alone (1 and 2 threads), then both ranks."""
    from featurebias import distributed

    distributed.init_from_env("gloo")
    rank, world = distributed.rank(), distributed.world_size()
    every = range(-(-cfg.n // cfg.batch))
    rows, erasers = [], {}
    for threads in (1, 2):  # one process; the other rank waits at the barrier
        distributed.barrier()
        if rank == 0:
            torch.set_num_threads(threads)
            erasers[1], times = fit(cfg, every, merge=False)
            rows.append({"processes": 1, "threads_per_process": threads, **times})
    torch.set_num_threads(1)
    distributed.barrier()
    erasers[world], times = fit(cfg, every[rank::world], merge=True)
    rows.append({"processes": world, "threads_per_process": 1, **times})
    if rank == 0:
        for p, eraser in erasers.items():
            eraser.save(out.with_name(f"p{p}.safetensors"))
        out.write_text(json.dumps(rows))


def run_job(cfg: Config, folder: Path) -> list[dict]:
    """The whole measurement as one fresh `torchrun --standalone` job of 2 ranks."""
    out = folder / "rows.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", str(SCRIPT), "--worker", str(out),
               "--config", json.dumps(dataclasses.asdict(cfg))]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the torchrun job failed:\n{done.stderr}")
    return json.loads(out.read_text())


def agreement(folder: Path, cfg: Config) -> dict:
    """Max abs differences between the 2-process and the 1-process erasers."""
    from featurebias.erasure import load

    one, two = (load(folder / f"p{p}.safetensors") for p in (1, 2))
    x, _ = chunk(cfg, 0)
    probe = x[:256].double()
    return {"P_max_abs_diff": float((one.P - two.P).abs().max()),
            "bias_max_abs_diff": float((one.bias - two.bias).abs().max()),
            "applied_max_abs_diff": float((one(probe) - two(probe)).abs().max()),
            "applied_scale": float(one(probe).abs().max()), "rank": one.rank}


def main(argv: list[str] | None = None) -> dict:
    """Run every layout, print the table, write the JSON; returns what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/distributed.json)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(Config(**json.loads(args.config)), args.worker)
        return {}
    cfg = QUICK if args.quick else Config()
    out = args.out or RESULTS / "distributed.json"
    print(f"LEACE fit: n={cfg.n} d={cfg.d} k={cfg.k} batch={cfg.batch}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_job(cfg, Path(tmp))
        exact = agreement(Path(tmp), cfg)
    base = rows[0]["fit_s"]
    for row in rows:
        row["speedup_vs_1x1"] = base / row["fit_s"]
        print(f"{row['processes']} process(es) x {row['threads_per_process']} thread(s): "
              f"fit {row['fit_s']:.2f} s (updates {row['update_s']:.2f}, merge "
              f"{row['reduce_s']:.3f}, eraser {row['eraser_s']:.2f}), "
              f"{row['speedup_vs_1x1']:.2f}x")
    print(f"2 vs 1 process: max |ΔP| = {exact['P_max_abs_diff']:.2e}, max |Δ eraser(x)| = "
          f"{exact['applied_max_abs_diff']:.2e} (scale {exact['applied_scale']:.1f})")
    result = {"config": dataclasses.asdict(cfg), "quick": args.quick, **environment(),
              "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
              "rows": rows, "agreement": exact}
    write_results(out, result)
    return result


if __name__ == "__main__":
    main()
