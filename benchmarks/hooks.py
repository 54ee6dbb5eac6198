"""Hook overhead: erasing inside a transformer, and collecting activations, vs TransformerLens.

Run: `.venv/bin/python benchmarks/hooks.py [--quick] [--out PATH]`.

1. `forward` vs `forward_erased`: a forward pass of `tiny_transformer` (d_model 256, 4 layers,
   a batch of 64 × 128 tokens) bare, and inside `erase_at` with a fitted LEACE eraser at four
   sites (`blocks.{i}.hook_resid_post`). Goal: overhead ≤ 15 %.
2. `collect` vs `run_with_cache`: keeping two sites of the same batch with `collect` against
   TransformerLens's `run_with_cache` (which caches every hook), once with the later site in
   the middle block (collect stops the forward there) and once in the last block. Time, the
   bytes each keeps, and the peak resident-memory increase of a fresh interpreter doing only
   that (Linux VmHWM).
   Goal: ≥ 1.5x faster and less memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import torch

from featurebias import models
from featurebias.hooks import collect, erase_at, fit_erasers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, median_times, write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class Config:
    d_model: int = 256
    n_layers: int = 4
    batch: int = 64
    seq: int = 128
    vocab: int = 512
    repeats: int = 5


QUICK = Config(d_model=32, n_layers=4, batch=8, seq=16, vocab=64, repeats=3)


def build(cfg: Config):
    model = models.tiny_transformer(d_model=cfg.d_model, n_layers=cfg.n_layers,
                                    n_heads=max(1, cfg.d_model // 64), d_vocab=cfg.vocab,
                                    n_ctx=cfg.seq, seed=0)
    model.eval()
    tokens = torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq),
                           generator=torch.Generator().manual_seed(0))
    return model, tokens


def collect_sites(cfg: Config, last: int) -> list[str]:
    return ["blocks.0.hook_resid_post", f"blocks.{last}.hook_resid_post"]


def erasure_rows(cfg: Config, model, tokens) -> list[dict]:
    sites = [f"blocks.{i}.hook_resid_post" for i in range(cfg.n_layers)]
    labels = (tokens < cfg.vocab // 2).long()  # a per-token concept
    erasers = fit_erasers(model, [tokens], labels, sites, progress=False)

    def bare():
        with torch.no_grad():
            model(tokens)

    def erased():
        with torch.no_grad(), erase_at(model, erasers):
            model(tokens)

    t_bare, t_erased = median_times([bare, erased], cfg.repeats)
    return [{"task": "forward_erased_4_sites", "baseline_s": t_bare, "featurebias_s": t_erased,
             "overhead": t_erased / t_bare - 1}]


def _resident_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0])


def peak_memory(task: str, quick: bool, last: int) -> dict:
    """Bytes `task` keeps and its peak resident-memory increase, in a fresh interpreter."""
    args = [sys.executable, __file__, "--memory-of", task, "--last", str(last)]
    done = subprocess.run(args + (["--quick"] if quick else []), capture_output=True,
                          text=True, check=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _memory_child(task: str, cfg: Config, last: int) -> dict:
    model, tokens = build(cfg)
    sites = collect_sites(cfg, last)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = _resident_kib("VmRSS")
    if task == "collect":
        kept = collect(model, [tokens], sites, progress=False).to_dict()
    else:
        kept = cached(model, tokens)
    peak = _resident_kib("VmHWM")
    stored = sum(t.numel() * t.element_size() for t in kept.values())
    return {"peak_rss_increase_bytes": (peak - before) * 1024, "kept_bytes": stored}


def cached(model, tokens) -> dict:
    with torch.no_grad():
        return dict(model.run_with_cache(tokens)[1])


def collect_rows(cfg: Config, model, tokens) -> list[dict]:
    """Two sites up to the middle block (collect stops the forward there), and up to the last."""
    rows = []
    for label, last in (("mid", cfg.n_layers // 2 - 1), ("last", cfg.n_layers - 1)):
        sites = collect_sites(cfg, last)

        def ours(sites=sites):
            collect(model, [tokens], sites, progress=False)

        def theirs():
            with torch.no_grad():
                model.run_with_cache(tokens)

        with torch.no_grad():
            _, cache = model.run_with_cache(tokens)
        mine = collect(model, [tokens], sites, progress=False)
        diff = max(float((mine[s] - cache[s]).abs().max()) for s in sites)
        t_ours, t_theirs = median_times([ours, theirs], cfg.repeats)
        rows.append({"task": f"collect_2_sites_{label}", "sites": sites,
                     "baseline_s": t_theirs, "featurebias_s": t_ours,
                     "speedup": t_theirs / t_ours, "max_abs_diff": diff})
    # Memory once, for the first pair (a fresh interpreter per measurement is slow to start).
    last = cfg.n_layers // 2 - 1
    rows[0]["memory_featurebias"] = peak_memory("collect", cfg == QUICK, last)
    rows[0]["memory_run_with_cache"] = peak_memory("cache", cfg == QUICK, last)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--memory-of", choices=["collect", "cache"], help=argparse.SUPPRESS)
    parser.add_argument("--last", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    if args.memory_of:  # child process of peak_memory: print one JSON line
        print(json.dumps(_memory_child(args.memory_of, cfg, args.last)))
        return {}
    out = args.out or RESULTS / ("hooks_quick.json" if args.quick else "hooks.json")
    model, tokens = build(cfg)
    rows = erasure_rows(cfg, model, tokens) + collect_rows(cfg, model, tokens)
    result = {"config": dataclasses.asdict(cfg), "quick": args.quick,
              **environment("transformer-lens"), "rows": rows}
    for row in rows:
        ratio = (f"overhead {row['overhead']:+.1%}" if "overhead" in row
                 else f"speedup {row['speedup']:.2f}x")
        print(f"{row['task']:<24} featurebias {row['featurebias_s']:.4f}s  "
              f"baseline {row['baseline_s']:.4f}s  {ratio}")
        for key in ("memory_featurebias", "memory_run_with_cache"):
            if key in row:
                mem = row[key]
                print(f"  {key:<22} kept {mem['kept_bytes'] / 2**20:8.2f} MiB   peak RSS +"
                      f"{mem['peak_rss_increase_bytes'] / 2**20:8.2f} MiB")
    write_results(out, result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
