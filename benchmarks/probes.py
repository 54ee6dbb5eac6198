"""Probe speed: featurebias `LinearProbe` against scikit-learn `LogisticRegression(lbfgs)`.

Run: `.venv/bin/python benchmarks/probes.py [--quick] [--device cuda] [--out PATH]`.

A sweep of `sites` sites × 1 feature: `n` rows of width `d`, `k` classes. Every site is a
different random linear map of one planted class signal (class means in a rank-`rank` latent
space, plus unit latent noise), with its own isotropic noise level (`noise`, from clean to
hard), a per-feature scale and an offset, so standardising matters. Both libraries fit the same
model: multinomial logistic regression, L2 with the same `C`, on features standardised with
the training rows (featurebias inside `fit`, scikit-learn through a `StandardScaler` in a
`Pipeline`, timed with the fit), with the same stopping rule (largest gradient entry of the
mean-scaled objective ≤ `tol`), and `max_iter` high enough to converge.

Data are float32, as activations are; scikit-learn 1.9 keeps float32 input in float32 for
lbfgs, so both libraries do the same arithmetic (`--sklearn-float64` gives it float64 copies
instead, made outside the timing: its classic path, half the speed per matrix product).

Three tables, all timed by wall clock (`time.perf_counter`) with both libraries on `threads`
threads (torch's intra-op pool; threadpoolctl limits BLAS and OpenMP); 1 by default because the
benchmark machine is shared: on 2 cores where another process holds one, every multi-threaded
matrix product waits at its OpenMP barrier for a descheduled thread, and both libraries slow
down 10-20x, by amounts that change from run to run. The load average before and after is
recorded. Goal: ≥ 5x faster at accuracy within 0.5 point.

1. **The sweep** as a user runs it: `probe_sites(acts, y, LinearProbe(C), cv=cv_folds)` on
   every site (all `n` rows, stratified folds seeded by `seed`, at `cv_tol`), against the same
   folds fitted one after the other with scikit-learn and scored on their held-out rows.
   featurebias fits a site's folds in one batched solve (each fold standardised on its own
   rows); probe_sites also scores log-loss and the chance baseline. Reported per site: time,
   mean fold accuracy and the largest fold accuracy difference in points.
2. **Single fits**, one per site on a fixed seeded train/test split (`test_fraction`), at each
   `tol` of `tols`: per-site fit time and held-out accuracy, iterations.
3. **C chosen by cross-validation**, once per site: `LinearProbe(C="cv", Cs=cv_Cs,
   cv=cv_folds)` against `LogisticRegressionCV(Cs=cv_Cs, cv=cv_folds, scoring="neg_log_loss")`
   behind a `StandardScaler`, both at `cv_tol`, both choosing C by held-out log-loss over the
   same stratified folds and refitting on all training rows. featurebias fits every C × fold
   in one batched solve; scikit-learn runs each fold's C path with warm starts (its scaler
   sees all training rows). Reported: time, chosen C and held-out accuracy of the refitted
   model.

Tables 1 and 2 run once as a warm-up, then `repeats` times, alternating libraries, and keep
the median (per site: the last run); table 3 runs once (the others have warmed both up).
Speedup = scikit-learn time / featurebias time.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from featurebias.probes import LinearProbe, probe_sites

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, median_times, write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class Config:
    """Problem sizes, solver settings and repeat counts."""

    n: int = 20_000
    d: int = 512
    k: int = 10
    sites: int = 8
    rank: int = 32
    signal: float = 0.5
    noise: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
    test_fraction: float = 0.2
    C: float = 1.0
    tols: tuple[float, ...] = (1e-4, 1e-5)
    max_iter: int = 10_000
    repeats: int = 3
    threads: int = 1
    seed: int = 0
    cv_Cs: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    cv_folds: int = 5
    cv_tol: float = 1e-4


QUICK = Config(n=600, d=16, k=3, sites=2, rank=4, noise=(0.5, 2.0), tols=(1e-4,), repeats=1,
               cv_Cs=(0.1, 1.0), cv_folds=3)


def make_sites(cfg: Config) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """`{site: x [n, d] float32}` and labels `[n]`: one planted signal, a map and noise per site."""
    g = torch.Generator().manual_seed(cfg.seed)
    y = torch.randint(0, cfg.k, (cfg.n,), generator=g)
    latent = cfg.signal * torch.randn(cfg.k, cfg.rank, generator=g)[y]
    latent += torch.randn(cfg.n, cfg.rank, generator=g)
    sites = {}
    for i in range(cfg.sites):
        noise = cfg.noise[i % len(cfg.noise)]
        mixing = torch.randn(cfg.rank, cfg.d, generator=g) / cfg.rank**0.5
        x = latent @ mixing + noise * torch.randn(cfg.n, cfg.d, generator=g)
        scale = torch.exp(torch.randn(cfg.d, generator=g))
        sites[f"site{i}"] = (x * scale + 3 * torch.randn(cfg.d, generator=g)).float()
    return sites, y


def split(cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(cfg.n, generator=torch.Generator().manual_seed(cfg.seed + 1))
    n_test = int(cfg.test_fraction * cfg.n)
    return order[n_test:], order[:n_test]


def sync(device: str) -> None:
    """Wait for the device's queued work, so wall-clock times cover it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_tol(cfg: Config, tol: float, sites, y, device: str,
            sklearn_float64: bool = False) -> tuple[list[dict], dict]:
    """Time both libraries on every site at one `tol`; per-site rows and a summary."""
    train, test = split(cfg)
    data = {s: (x[train], y[train], x[test], y[test]) for s, x in sites.items()}
    on_device = {s: tuple(t.to(device) for t in v) for s, v in data.items()}
    numpy_data = {s: tuple((t.double() if sklearn_float64 and t.is_floating_point() else t)
                           .numpy() for t in v) for s, v in data.items()}
    ours: dict[str, tuple[float, LinearProbe]] = {}
    theirs: dict[str, tuple[float, object]] = {}

    def fit_ours():
        for s, (xtr, ytr, _, _) in on_device.items():
            start = time.perf_counter()
            probe = LinearProbe(cfg.C, tol=tol, max_iter=cfg.max_iter).fit(xtr, ytr)
            sync(device)
            ours[s] = (time.perf_counter() - start, probe)

    def fit_theirs():
        for s, (xtr, ytr, _, _) in numpy_data.items():
            start = time.perf_counter()
            model = make_pipeline(StandardScaler(), LogisticRegression(
                C=cfg.C, tol=tol, max_iter=cfg.max_iter)).fit(xtr, ytr)
            theirs[s] = (time.perf_counter() - start, model)

    ours_s, theirs_s = median_times([fit_ours, fit_theirs], cfg.repeats)
    rows = []
    for i, s in enumerate(sites):
        (t_ours, probe), (t_theirs, model) = ours[s], theirs[s]
        acc_ours = probe.score(on_device[s][2], on_device[s][3])
        acc_theirs = float(model.score(numpy_data[s][2], numpy_data[s][3]))
        rows.append({"tol": tol, "site": s, "noise": cfg.noise[i % len(cfg.noise)],
                     "featurebias_s": t_ours, "sklearn_s": t_theirs,
                     "speedup": t_theirs / t_ours, "featurebias_accuracy": acc_ours,
                     "sklearn_accuracy": acc_theirs,
                     "accuracy_diff_points": 100 * (acc_ours - acc_theirs),
                     "featurebias_n_iter": probe.n_iter_,
                     "sklearn_n_iter": int(model[-1].n_iter_[0])})
    diffs = [r["accuracy_diff_points"] for r in rows]
    summary = {"tol": tol, "featurebias_total_s": ours_s, "sklearn_total_s": theirs_s,
               "speedup": theirs_s / ours_s, "max_abs_accuracy_diff_points": max(map(abs, diffs)),
               "mean_accuracy_diff_points": float(np.mean(diffs))}
    return rows, summary


def run_sweep(cfg: Config, sites, y, device: str) -> tuple[list[dict], dict]:
    """Time `probe_sites` against scikit-learn fold by fold on every site; rows and a summary."""
    y_np = y.numpy()
    folds = list(StratifiedKFold(cfg.cv_folds, shuffle=True, random_state=cfg.seed).split(
        y_np, y_np))
    on_device = {s: x.to(device) for s, x in sites.items()}
    ours: dict[str, tuple[float, np.ndarray]] = {}
    theirs: dict[str, tuple[float, np.ndarray]] = {}

    def sweep_ours():
        for s, x in on_device.items():
            start = time.perf_counter()
            probe = LinearProbe(cfg.C, tol=cfg.cv_tol, max_iter=cfg.max_iter)
            frame = probe_sites({s: x}, y, probe, cv=cfg.cv_folds, seed=cfg.seed,
                                progress=False)
            sync(device)
            ours[s] = (time.perf_counter() - start, frame["accuracy"].to_numpy())

    def sweep_theirs():
        for s, x in sites.items():
            x = x.numpy()
            start = time.perf_counter()
            scores = [make_pipeline(StandardScaler(), LogisticRegression(
                C=cfg.C, tol=cfg.cv_tol, max_iter=cfg.max_iter)).fit(x[train], y_np[train])
                .score(x[test], y_np[test]) for train, test in folds]
            theirs[s] = (time.perf_counter() - start, np.array(scores))

    ours_s, theirs_s = median_times([sweep_ours, sweep_theirs], cfg.repeats)
    rows = []
    for i, s in enumerate(sites):
        (t_ours, acc_ours), (t_theirs, acc_theirs) = ours[s], theirs[s]
        rows.append({"site": s, "noise": cfg.noise[i % len(cfg.noise)], "featurebias_s": t_ours,
                     "sklearn_s": t_theirs, "speedup": t_theirs / t_ours,
                     "featurebias_accuracy": float(acc_ours.mean()),
                     "sklearn_accuracy": float(acc_theirs.mean()),
                     "max_abs_fold_diff_points": float(100 * np.abs(acc_ours - acc_theirs).max())})
    summary = {"featurebias_total_s": ours_s, "sklearn_total_s": theirs_s,
               "speedup": theirs_s / ours_s, "max_abs_accuracy_diff_points": max(
                   r["max_abs_fold_diff_points"] for r in rows)}
    return rows, summary


def run_cv(cfg: Config, sites, y, device: str) -> tuple[list[dict], dict]:
    """Time C chosen by cross-validation, once per site; per-site rows and a summary."""
    train, test = split(cfg)
    folds = StratifiedKFold(cfg.cv_folds, shuffle=True, random_state=cfg.seed)
    rows = []
    for i, (s, x) in enumerate(sites.items()):
        xtr, ytr, xte, yte = x[train], y[train], x[test], y[test]
        start = time.perf_counter()
        probe = LinearProbe("cv", Cs=cfg.cv_Cs, cv=cfg.cv_folds, tol=cfg.cv_tol,
                            max_iter=cfg.max_iter, seed=cfg.seed).fit(xtr.to(device), ytr)
        sync(device)
        t_ours = time.perf_counter() - start
        start = time.perf_counter()
        model = make_pipeline(StandardScaler(), LogisticRegressionCV(
            Cs=list(cfg.cv_Cs), cv=folds, scoring="neg_log_loss", tol=cfg.cv_tol,
            max_iter=cfg.max_iter, l1_ratios=(0.0,), use_legacy_attributes=False)).fit(
                xtr.numpy(), ytr.numpy())
        t_theirs = time.perf_counter() - start
        acc_ours = probe.score(xte.to(device), yte)
        acc_theirs = float((model.predict(xte.numpy()) == yte.numpy()).mean())
        rows.append({"site": s, "noise": cfg.noise[i % len(cfg.noise)], "featurebias_s": t_ours,
                     "sklearn_s": t_theirs, "speedup": t_theirs / t_ours,
                     "featurebias_C": probe.C_, "sklearn_C": float(model[-1].C_),
                     "featurebias_accuracy": acc_ours, "sklearn_accuracy": acc_theirs,
                     "accuracy_diff_points": 100 * (acc_ours - acc_theirs)})
    ours_s = sum(r["featurebias_s"] for r in rows)
    theirs_s = sum(r["sklearn_s"] for r in rows)
    summary = {"featurebias_total_s": ours_s, "sklearn_total_s": theirs_s,
               "speedup": theirs_s / ours_s, "max_abs_accuracy_diff_points": max(
                   abs(r["accuracy_diff_points"]) for r in rows)}
    return rows, summary


# (header, width, template filled from a row): the columns every table starts with.
TIMES = [("noise", 6, "{noise:.2f}"), ("fb s", 9, "{featurebias_s:.3f}"),
         ("sk s", 9, "{sklearn_s:.3f}"), ("speedup", 9, "{speedup:.2f}x")]
ACCURACIES = [("fb acc", 9, "{featurebias_accuracy:.4f}"), ("sk acc", 9, "{sklearn_accuracy:.4f}")]


def format_table(title: str, labels: list[str], rows: list[dict], columns: list,
                 totals: list[tuple[str, dict]]) -> str:
    """A table: `title` over the row `labels`, then `columns`; a line per `(label, summary)`."""
    lines = [f"{title:<14}" + "".join(f"{h:>{w}}" for h, w, _ in columns)]
    lines += [f"{label:<14}" + "".join(f"{t.format(**r):>{w}}" for _, w, t in columns)
              for label, r in zip(labels, rows, strict=True)]
    lines += [f"{label:<20}{s['featurebias_total_s']:>9.3f}{s['sklearn_total_s']:>9.3f}"
              f"{s['speedup']:>8.2f}x   max |diff| {s['max_abs_accuracy_diff_points']:.2f} pt"
              for label, s in totals]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the table, write the JSON; returns what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--device", default="cpu", help="where LinearProbe fits (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=None, help="threads for both libraries")
    parser.add_argument("--sklearn-float64", action="store_true",
                        help="give scikit-learn float64 copies of the data")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/probes[_quick].json)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    if args.threads is not None:
        cfg = dataclasses.replace(cfg, threads=args.threads)
    out = args.out or RESULTS / ("probes_quick.json" if args.quick else "probes.json")

    torch.manual_seed(cfg.seed)
    sites, y = make_sites(cfg)
    rows, summaries = [], []
    load_before = os.getloadavg()
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        with threadpool_limits(cfg.threads):
            sweep_rows, sweep_summary = run_sweep(cfg, sites, y, args.device)
            for tol in cfg.tols:
                tol_rows, summary = run_tol(cfg, tol, sites, y, args.device,
                                            args.sklearn_float64)
                rows += tol_rows
                summaries.append(summary)
            cv_rows, cv_summary = run_cv(cfg, sites, y, args.device)
        env = environment("scikit-learn")  # reports the thread count used
    finally:
        torch.set_num_threads(torch_threads)
    result = {"config": dataclasses.asdict(cfg), "quick": args.quick,
              "featurebias_device": args.device, "sklearn_dtype":
              "float64" if args.sklearn_float64 else "float32", **env,
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "sweep_rows": sweep_rows, "sweep_summary": sweep_summary,
              "rows": rows, "summary": summaries, "cv_rows": cv_rows, "cv_summary": cv_summary}
    print(f"n={cfg.n} d={cfg.d} k={cfg.k} sites={cfg.sites} C={cfg.C} | torch "
          f"{result['torch']} ({args.device}), scikit-learn {result['scikit_learn']} "
          f"({result['sklearn_dtype']}), {cfg.threads} thread(s), load "
          f"{load_before[0]:.2f} -> {result['load_average_after'][0]:.2f}")
    sites = [r["site"] for r in sweep_rows]
    print(format_table("sweep", sites, sweep_rows, TIMES + ACCURACIES + [
        ("max diff pt", 13, "{max_abs_fold_diff_points:.2f}")], [("total", sweep_summary)]))
    print(format_table("single fits", [f"{r['tol']:.0e} {r['site']}" for r in rows], rows,
                       TIMES + ACCURACIES + [("diff pt", 9, "{accuracy_diff_points:+.2f}"),
                                             ("fb it", 7, "{featurebias_n_iter}"),
                                             ("sk it", 7, "{sklearn_n_iter}")],
                       [(f"{s['tol']:.0e} total", s) for s in summaries]))
    print(format_table("C by CV", sites, cv_rows, TIMES + [
        ("fb C", 8, "{featurebias_C:g}"), ("sk C", 8, "{sklearn_C:g}")] + ACCURACIES + [
        ("diff pt", 9, "{accuracy_diff_points:+.2f}")], [("total", cv_summary)]))
    write_results(out, result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
