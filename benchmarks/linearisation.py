"""Iterative linearisation and the empirical NTK: step cost, kernel time and memory.

Run: `.venv/bin/python benchmarks/linearisation.py [--quick] [--device cuda] [--out PATH]`.

1. `step_*`: one training step of the linearised model (`Linearised`: a jvp at θ_lin for
   `f_lin`, back-propagation through its tangent; cross-entropy; SGD update) against a standard
   SGD step of the same network on the same batch, for the digits MLP (64–128–128–10, batch
   `batch`) and `small_cnn` (3 channels, width 16, depth 2, 16×16 images). Timed: `steps`
   steps per run, median of `repeats` runs, alternating the two. Goal: ratio ≤ 3.
2. `ntk_*`: `empirical_ntk` of `ntk_n` examples on `small_cnn`, traced kernel, in both modes
   ("jacobian" and "ntk_vp", default chunk sizes); time, and peak memory: on CUDA
   `torch.cuda.max_memory_allocated` around the call, on the CPU the peak resident-memory
   increase of a fresh interpreter doing only that (Linux VmHWM; tracemalloc does not see
   torch's allocations). The two modes' kernels are compared (max relative difference).

`threads` torch threads (1 by default: the benchmark machine is shared, and on 2 busy cores
multi-threaded kernels wait on descheduled threads). The load average is recorded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featurebias import models
from featurebias.training import Linearised, empirical_ntk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, median_times, write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class Config:
    """Model and problem sizes, repeat counts."""

    mlp_hidden: tuple[int, ...] = (128, 128)
    cnn_width: int = 16
    image_size: int = 16
    batch: int = 64
    steps: int = 20
    ntk_n: int = 256
    repeats: int = 5
    threads: int = 1
    seed: int = 0


QUICK = Config(mlp_hidden=(16,), cnn_width=4, image_size=8, batch=8, steps=3, ntk_n=12,
               repeats=1)


def networks(cfg: Config, device: str) -> dict[str, tuple[Callable[[], nn.Module], Tensor]]:
    """`{name: (build, input batch)}` for the digits MLP and the small CNN (seeded builds)."""
    g = torch.Generator().manual_seed(cfg.seed)
    mlp_x = torch.rand(cfg.batch, 64, generator=g)
    cnn_x = torch.rand(cfg.batch, 3, cfg.image_size, cfg.image_size, generator=g)
    return {
        "mlp": (lambda: models.mlp(64, cfg.mlp_hidden, 10, seed=cfg.seed).to(device),
                mlp_x.to(device)),
        "small_cnn": (lambda: small_cnn(cfg, device), cnn_x.to(device)),
    }


def small_cnn(cfg: Config, device: str) -> nn.Module:
    return models.small_cnn(3, 10, cfg.cnn_width, 2, image_size=cfg.image_size,
                            seed=cfg.seed).to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_rows(cfg: Config, device: str) -> list[dict]:
    """Seconds per standard and per linearised SGD step, for each network."""
    rows = []
    for name, (build, x) in networks(cfg, device).items():
        y = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(1))
        y = y.to(device)
        model, lin = build(), Linearised(build())

        def run(net, x=x, y=y, steps=cfg.steps):
            opt = torch.optim.SGD(net.parameters(), lr=1e-3)
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(x), y).backward()
                opt.step()
            _sync(device)

        t_std, t_lin = median_times([lambda m=model: run(m), lambda m=lin: run(m)], cfg.repeats)
        rows.append({"task": f"step_{name}", "batch": x.shape[0],
                     "parameters": sum(p.numel() for p in model.parameters()),
                     "standard_step_s": t_std / cfg.steps, "linearised_step_s": t_lin / cfg.steps,
                     "ratio": t_lin / t_std})
    return rows


def ntk_inputs(cfg: Config, device: str) -> tuple[nn.Module, Tensor]:
    model = small_cnn(cfg, device)
    x = torch.rand(cfg.ntk_n, 3, cfg.image_size, cfg.image_size,
                   generator=torch.Generator().manual_seed(cfg.seed + 2)).to(device)
    return model, x


def _resident_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0])


def _memory_child(mode: str, cfg: Config) -> dict:
    """Peak RSS increase of one `empirical_ntk` call (run in a fresh interpreter)."""
    model, x = ntk_inputs(cfg, "cpu")
    # torch.func's one-off set-up is not the call's memory
    empirical_ntk(model, x[:2], mode=mode, progress=False)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = _resident_kib("VmRSS")
    empirical_ntk(model, x, mode=mode, progress=False)
    return {"peak_rss_increase_bytes": (_resident_kib("VmHWM") - before) * 1024}


def peak_memory(mode: str, cfg: Config, device: str, quick: bool) -> dict:
    if device.startswith("cuda"):
        model, x = ntk_inputs(cfg, device)
        empirical_ntk(model, x[:2], mode=mode, progress=False)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        empirical_ntk(model, x, mode=mode, progress=False)
        torch.cuda.synchronize()
        return {"peak_cuda_increase_bytes": torch.cuda.max_memory_allocated() - start}
    args = [sys.executable, __file__, "--memory-of", mode, "--threads", str(cfg.threads)]
    done = subprocess.run(args + (["--quick"] if quick else []), capture_output=True,
                          text=True, check=True, timeout=1200)
    return json.loads(done.stdout.strip().splitlines()[-1])


def ntk_rows(cfg: Config, device: str, quick: bool) -> list[dict]:
    model, x = ntk_inputs(cfg, device)
    rows, kernels = [], {}
    for mode in ("jacobian", "ntk_vp"):
        empirical_ntk(model, x[:2], mode=mode, progress=False)  # warm-up (torch.func set-up)
        _sync(device)
        start = time.perf_counter()
        kernels[mode] = empirical_ntk(model, x, mode=mode, progress=False)
        _sync(device)
        rows.append({"task": f"ntk_{mode}", "examples": cfg.ntk_n,
                     "seconds": time.perf_counter() - start,
                     **peak_memory(mode, cfg, device, quick)})
    k1, k2 = kernels["jacobian"].double(), kernels["ntk_vp"].double()
    diff = float((k1 - k2).abs().max() / k1.abs().max())
    for row in rows:
        row["max_rel_diff_between_modes"] = diff
    return rows


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the table, write the JSON; returns what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/linearisation[_quick].json)")
    parser.add_argument("--memory-of", choices=["jacobian", "ntk_vp"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    if args.threads is not None:
        cfg = dataclasses.replace(cfg, threads=args.threads)
    torch.set_num_threads(cfg.threads)
    if args.memory_of:  # child process of peak_memory: print one JSON line
        print(json.dumps(_memory_child(args.memory_of, cfg)))
        return {}
    out = args.out or RESULTS / ("linearisation_quick.json" if args.quick
                                 else "linearisation.json")
    load_before = os.getloadavg()
    rows = step_rows(cfg, args.device) + ntk_rows(cfg, args.device, args.quick)
    result = {"config": dataclasses.asdict(cfg), "quick": args.quick, "device": args.device,
              **environment(), "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "rows": rows}
    print(f"{args.device}, {cfg.threads} thread(s), load {load_before[0]:.2f} -> "
          f"{result['load_average_after'][0]:.2f}")
    for row in rows:
        if "ratio" in row:
            print(f"{row['task']:<16} standard {row['standard_step_s'] * 1e3:8.2f} ms   "
                  f"linearised {row['linearised_step_s'] * 1e3:8.2f} ms   "
                  f"ratio {row['ratio']:.2f}x")
        else:
            memory = row.get("peak_rss_increase_bytes", row.get("peak_cuda_increase_bytes"))
            print(f"{row['task']:<16} {row['examples']} examples  {row['seconds']:8.2f} s   "
                  f"peak +{memory / 2**20:8.1f} MiB   modes differ by "
                  f"{row['max_rel_diff_between_modes']:.1e}")
    write_results(out, result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
