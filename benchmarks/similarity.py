"""Representation similarity: feature-space linear CKA vs the Gram formula; RSA vs rsatoolbox.

Run: `.venv/bin/python benchmarks/similarity.py [--quick] [--out PATH]`.

1. `cka_linear`: n = 20,000 stimuli, d = 1024 units on both sides, float64. featurebias's
   `cka(x, y)` (one symmetric product of the centred joint rows [X Y], streamed in chunks,
   holding XᵀX, YᵀX and YᵀY; BLAS dsyrk on CPU) against the
   Gram formula ⟨HKH, HLH⟩ / (‖HKH‖ ‖HLH‖) with K = XXᵀ, L = YYᵀ (float64, centred in place).
   Time; the matrices each keeps ((2d)²·8 bytes vs 2·n²·8); and the peak resident-memory
   increase of a fresh process doing only that (Linux VmHWM). Goal: ≥ 20x and O(d²) memory.
2. `rsa_spearman`: 1,000 conditions × 512 units: correlation-distance RDMs of two
   representations and their Spearman correlation, `rsa(x, y)` against rsatoolbox's
   `calc_rdm(..., method="correlation")` twice and `compare(..., method="spearman")`.
   Goal: ≥ 5x. Also reported: the RDM alone (`rdm_correlation`) and Kendall's τ_a
   (`rsa_kendall_tau_a`, `compare(..., method="tau-a")`), which have no goal.

Wall clock (`time.perf_counter`, median over repeats after a warm-up), CPU. Both libraries get
`threads` threads (torch's intra-op pool; threadpoolctl limits BLAS and OpenMP), 1 by default:
on the shared 2-core benchmark machine a multi-threaded product waits at its OpenMP barrier
for a descheduled thread, which slows small operations many times over, by varying amounts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from featurebias.similarity import cka, rdm, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, median_times, write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 20_000
    d: int = 1024
    conditions: int = 1000
    units: int = 512
    cka_repeats: int = 2  # each Gram run takes about a minute
    repeats: int = 7
    threads: int = 1


QUICK = Config(n=1500, d=64, conditions=80, units=32, cka_repeats=2, repeats=2)


def representations(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two related float64 representations `[n, d]` of the same stimuli."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    w = torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
    return x, torch.tanh(x @ w) + 0.5 * torch.randn(n, d, generator=gen, dtype=torch.float64)


def gram_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kornblith et al.'s Gram formula, with n×n matrices centred in place (no n×n temporaries)."""
    def centred_gram(t):
        k = t @ t.T
        k -= k.mean(0, keepdim=True)
        k -= k.mean(1, keepdim=True)
        return k
    k = centred_gram(x)
    ell = centred_gram(y)
    return float(torch.dot(k.view(-1), ell.view(-1)) / (k.norm() * ell.norm()))


def _resident_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0])


def _peak_child(task: str, n: int, d: int, threads: int) -> None:
    """Run in a fresh interpreter: build the data, reset the peak, run `task`, print JSON."""
    torch.set_num_threads(threads)
    x, y = representations(n, d)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = _resident_kib("VmRSS")
    value = cka(x, y) if task == "featurebias" else gram_cka(x, y)
    peak = _resident_kib("VmHWM")
    print(json.dumps({"peak_rss_increase_bytes": (peak - before) * 1024, "value": value}))


def peak_memory(task: str, cfg: Config) -> dict:
    """Peak memory of a fresh process that runs only `task` (a subprocess, not a fork)."""
    out = subprocess.run([sys.executable, __file__, "--peak-child", task, str(cfg.n),
                          str(cfg.d), str(cfg.threads)], check=True, capture_output=True,
                         text=True, timeout=1800, env={**os.environ,
                                                       "OMP_NUM_THREADS": str(cfg.threads)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _time_cka(cfg: Config) -> tuple[float, float, dict]:
    x, y = representations(cfg.n, cfg.d)
    values = {}

    def ours():
        values["featurebias"] = cka(x, y)

    def gram():
        values["gram"] = gram_cka(x, y)

    return (*median_times([ours, gram], cfg.cka_repeats), values)


def cka_rows(cfg: Config) -> list[dict]:
    t_ours, t_gram, values = _time_cka(cfg)  # frees the data: the memory runs come next
    return [{"task": "cka_linear", "n": cfg.n, "d": cfg.d, "baseline": "gram_formula_float64",
             "baseline_s": t_gram, "featurebias_s": t_ours, "speedup": t_gram / t_ours,
             "max_abs_diff": abs(values["featurebias"] - values["gram"]),
             "value": values["featurebias"],
             "matrix_bytes_featurebias": (2 * cfg.d)**2 * 8,
             "matrix_bytes_baseline": 2 * cfg.n**2 * 8,
             "memory_featurebias": peak_memory("featurebias", cfg),
             "memory_baseline": peak_memory("gram", cfg)}]


def rsa_rows(cfg: Config) -> list[dict]:
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm, compare

    x, y = representations(cfg.conditions, cfg.units, seed=1)
    xn, yn = x.numpy(), y.numpy()

    def toolbox_rdm(a):
        return calc_rdm(Dataset(a), method="correlation")

    def toolbox_rsa(method):
        return float(compare(toolbox_rdm(xn), toolbox_rdm(yn), method=method)[0, 0])

    rows = []
    rdm_diff = float((rdm(x) - torch.as_tensor(toolbox_rdm(xn).get_matrices()[0])).abs().max())
    t_ours, t_theirs = median_times([lambda: rdm(x), lambda: toolbox_rdm(xn)], cfg.repeats)
    rows.append({"task": "rdm_correlation", "baseline": "rsatoolbox", "baseline_s": t_theirs,
                 "featurebias_s": t_ours, "speedup": t_theirs / t_ours,
                 "max_abs_diff": rdm_diff})
    for task, ours, theirs in (("rsa_spearman", "spearman", "spearman"),
                               ("rsa_kendall_tau_a", "kendall_tau_a", "tau-a")):
        diff = abs(rsa(x, y, compare=ours) - toolbox_rsa(theirs))
        t_ours, t_theirs = median_times([lambda o=ours: rsa(x, y, compare=o),
                                         lambda t=theirs: toolbox_rsa(t)], cfg.repeats)
        rows.append({"task": task, "baseline": "rsatoolbox", "baseline_s": t_theirs,
                     "featurebias_s": t_ours, "speedup": t_theirs / t_ours,
                     "max_abs_diff": diff})
    for row in rows:
        row.update(conditions=cfg.conditions, units=cfg.units)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--threads", type=int, default=None, help="threads for both sides")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    if args.threads is not None:
        cfg = dataclasses.replace(cfg, threads=args.threads)
    out = args.out or RESULTS / ("similarity_quick.json" if args.quick else "similarity.json")
    load_before = os.getloadavg()
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        with threadpool_limits(cfg.threads):
            rows = rsa_rows(cfg) + cka_rows(cfg)
        env = environment("rsatoolbox")  # reports the thread count used
    finally:
        torch.set_num_threads(torch_threads)
    result = {"config": dataclasses.asdict(cfg), "quick": args.quick, **env,
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "rows": rows}
    print(f"{cfg.threads} thread(s), load {load_before[0]:.2f} -> "
          f"{result['load_average_after'][0]:.2f}")
    for row in rows:
        print(f"{row['task']:<18} featurebias {row['featurebias_s']:9.4f}s  baseline "
              f"{row['baseline_s']:9.4f}s  speedup {row['speedup']:7.2f}x  "
              f"|diff| {row['max_abs_diff']:.1e}")
        if "memory_baseline" in row:
            print(f"  matrices kept: featurebias {row['matrix_bytes_featurebias'] / 2**20:.1f} "
                  f"MiB, Gram {row['matrix_bytes_baseline'] / 2**20:.1f} MiB; peak RSS "
                  f"+{row['memory_featurebias']['peak_rss_increase_bytes'] / 2**20:.1f} MiB vs "
                  f"+{row['memory_baseline']['peak_rss_increase_bytes'] / 2**20:.1f} MiB")
    write_results(out, result)
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peak-child":
        _peak_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        main(sys.argv[1:])
