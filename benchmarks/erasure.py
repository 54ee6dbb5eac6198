"""Erasure speed: featurebias against concept-erasure 0.2.4, side by side in one process.

Run: `.venv/bin/python benchmarks/erasure.py [--quick] [--out PATH]`.

What is measured (wall clock, `time.perf_counter`, torch's default thread count, CPU):

1. `leace_fit`: stream `n` float32 rows of width `d` with `k` integer classes through each
   library's LEACE fitter in batches of `batch` rows (float64 statistics, no shrinkage), then
   compute the eraser. concept-erasure wants one-hot float labels; encoding them is part of its
   timed work, as featurebias does it inside `update`. Its trace-constraint fallback is off
   (featurebias has none; it can only fire through rounding).
2. `leace_apply`: apply the fitted eraser to all `n` rows.
3. `qleace_fit`: stream `qleace_n` rows of width `qleace_d`, `k` classes, through each
   QLEACE fitter, then compute the eraser (Wasserstein barycenter and the k OT maps). Both
   use no shrinkage and the uniform mean of the class means as target (concept-erasure's only
   choice), so the two erasers are the same map.
4. `qleace_apply`: apply the QLEACE eraser (with the labels) to all `qleace_n` rows.

For the apply rows both libraries do float32 work: concept-erasure's erasers keep float64
tensors, so on float32 input they silently compute in float64 (and QLEACE returns float64);
its fitted erasers are cast to float32 once, outside the timing. Each task runs once as a
warm-up, then `repeats` times; the table shows the median. Before timing, the script checks
that both libraries give the same output (max abs difference, float32 outputs), so the times
are of equivalent work.

Data: a seeded torch generator draws a low-rank-plus-noise x (rank 32 signal plus isotropic
noise, full rank) and labels correlated with x (argmax of a random linear score plus Gumbel
noise), so class means and class covariances differ.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from concept_erasure import LeaceEraser as CeLeaceEraser
from concept_erasure import LeaceFitter as CeLeaceFitter
from concept_erasure import QuadraticEraser as CeQuadraticEraser
from concept_erasure import QuadraticFitter as CeQuadraticFitter

from featurebias.erasure.leace import LeaceEraser, LeaceFitter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, median_times, write_results  # noqa: E402

from featurebias.erasure.quadratic import QuadraticEraser, QuadraticFitter

RESULTS = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class Config:
    """Problem sizes and repeat counts."""

    n: int = 100_000
    d: int = 768
    k: int = 10
    batch: int = 4096
    qleace_n: int = 20_000
    qleace_d: int = 256
    repeats: int = 5
    fit_repeats: int = 3
    seed: int = 0


QUICK = Config(n=1000, d=16, k=3, batch=256, qleace_n=600, qleace_d=8, repeats=3,
               fit_repeats=3)


@dataclasses.dataclass
class Row:
    """One timed task: median seconds for each library and their output agreement."""

    task: str
    featurebias_s: float
    concept_erasure_s: float
    repeats: int
    max_abs_diff: float
    output_scale: float

    @property
    def speedup(self) -> float:
        """concept-erasure time / featurebias time (> 1: featurebias is faster)."""
        return self.concept_erasure_s / self.featurebias_s

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "speedup": self.speedup}


# ------------------------------------------------------------------------------------ data


def make_data(n: int, d: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 `x [n, d]` (rank-32 signal plus noise) and int64 labels correlated with x."""
    g = torch.Generator().manual_seed(seed)
    rank = min(32, d)
    signal = torch.randn(n, rank, generator=g) @ torch.randn(rank, d, generator=g)
    x = signal / rank**0.5 + 0.5 * torch.randn(n, d, generator=g)
    scores = x @ torch.randn(d, k, generator=g) / d**0.5
    gumbel = -torch.log(-torch.log(torch.rand(n, k, generator=g).clamp_min(1e-12)))
    z = (scores + gumbel).argmax(-1)
    return x.float(), z


def batches(x: torch.Tensor, z: torch.Tensor, size: int):
    for start in range(0, len(x), size):
        yield x[start:start + size], z[start:start + size]


# ------------------------------------------------------------------------- timed functions


def fb_leace_fit(x, z, k: int, batch: int) -> LeaceEraser:
    fitter = LeaceFitter(x.shape[1], k, dtype=torch.float64)
    for xb, zb in batches(x, z, batch):
        fitter.update(xb, zb)
    return fitter.eraser


def ce_leace_fit(x, z, k: int, batch: int) -> CeLeaceEraser:
    fitter = CeLeaceFitter(x.shape[1], k, dtype=torch.float64, shrinkage=False,
                           constrain_cov_trace=False)
    for xb, zb in batches(x, z, batch):
        fitter.update(xb, torch.nn.functional.one_hot(zb, k))
    return fitter.eraser


def fb_qleace_fit(x, z, k: int, batch: int) -> QuadraticEraser:
    fitter = QuadraticFitter(x.shape[1], k, target_mean="uniform")
    for xb, zb in batches(x, z, batch):
        fitter.update(xb, zb)
    return fitter.eraser


def ce_qleace_fit(x, z, k: int, batch: int) -> CeQuadraticEraser:
    fitter = CeQuadraticFitter(x.shape[1], k, dtype=torch.float64, shrinkage=False)
    for xb, zb in batches(x, z, batch):
        fitter.update(xb, zb)
    return fitter.eraser


def ce_as_float32(eraser):
    """A concept-erasure eraser with its tensors cast to float32 (frozen dataclass copy)."""
    return dataclasses.replace(eraser, **{
        f.name: value.float() for f in dataclasses.fields(eraser)
        if isinstance(value := getattr(eraser, f.name), torch.Tensor)
    })


# ---------------------------------------------------------------------------------- timing


def compare(task: str, ours: Callable[[], object], theirs: Callable[[], object],
            output: tuple[torch.Tensor, torch.Tensor], repeats: int) -> Row:
    """Time both callables; `output` holds the two libraries' results to compare."""
    mine, reference = output
    assert mine.dtype == reference.dtype == torch.float32, (mine.dtype, reference.dtype)
    diff = float((mine - reference).abs().max())
    scale = float(reference.abs().max())
    ours_s, theirs_s = median_times([ours, theirs], repeats)
    return Row(task, ours_s, theirs_s, repeats, diff, scale)


# -------------------------------------------------------------------------------- the runs


def leace_rows(cfg: Config) -> list[Row]:
    x, z = make_data(cfg.n, cfg.d, cfg.k, cfg.seed)
    ours = fb_leace_fit(x, z, cfg.k, cfg.batch)
    theirs = ce_as_float32(ce_leace_fit(x, z, cfg.k, cfg.batch))
    erased = (ours(x), theirs(x))
    fit = compare("leace_fit", lambda: fb_leace_fit(x, z, cfg.k, cfg.batch),
                  lambda: ce_leace_fit(x, z, cfg.k, cfg.batch), erased, cfg.fit_repeats)
    apply = compare("leace_apply", lambda: ours(x), lambda: theirs(x), erased, cfg.repeats)
    return [fit, apply]


def qleace_rows(cfg: Config) -> list[Row]:
    x, z = make_data(cfg.qleace_n, cfg.qleace_d, cfg.k, cfg.seed + 1)
    ours = fb_qleace_fit(x, z, cfg.k, cfg.batch)
    theirs = ce_as_float32(ce_qleace_fit(x, z, cfg.k, cfg.batch))
    erased = (ours(x, z), theirs(x, z))
    fit = compare("qleace_fit", lambda: fb_qleace_fit(x, z, cfg.k, cfg.batch),
                  lambda: ce_qleace_fit(x, z, cfg.k, cfg.batch), erased, cfg.fit_repeats)
    apply = compare("qleace_apply", lambda: ours(x, z), lambda: theirs(x, z), erased,
                    cfg.repeats)
    return [fit, apply]


def format_table(rows: list[Row]) -> str:
    lines = [f"{'task':<14}{'featurebias s':>15}{'concept-erasure s':>19}{'speedup':>9}"
             f"{'max |diff|':>12}{'max |out|':>11}"]
    for r in rows:
        lines.append(f"{r.task:<14}{r.featurebias_s:>15.4f}{r.concept_erasure_s:>19.4f}"
                     f"{r.speedup:>8.2f}x{r.max_abs_diff:>12.2e}{r.output_scale:>11.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the table, write the JSON; returns what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/erasure[_quick].json)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    out = args.out or RESULTS / ("erasure_quick.json" if args.quick else "erasure.json")

    torch.manual_seed(cfg.seed)
    rows = leace_rows(cfg) + qleace_rows(cfg)
    result = {"config": dataclasses.asdict(cfg), "quick": args.quick,
              **environment("concept-erasure"), "rows": [r.as_dict() for r in rows]}
    print(f"n={cfg.n} d={cfg.d} k={cfg.k} batch={cfg.batch} | QLEACE n={cfg.qleace_n} "
          f"d={cfg.qleace_d} | torch {result['torch']}, {result['threads']} threads")
    print(format_table(rows))
    write_results(out, result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
