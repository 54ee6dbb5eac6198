"""The `featurebias` command: the demo, the papers' analyses, and a model's sites."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import FeatureBiasError

MODELS = ("mlp", "resmlp", "lenet", "small_cnn", "small_resnet", "tiny_transformer", "tiny_gpt2")
MODEL_DEFAULTS = {"mlp": {"in_dim": 16}, "resmlp": {"in_dim": 16}}  # the required arguments


def run_analysis(name: str, args: argparse.Namespace) -> Path | None:
    """Run analysis `name` with the command line's config; returns the report's path."""
    from featurebias.analyses import _config, _report, get

    from . import distributed
    from .launch import analysis_overrides

    module = get(name)
    overrides = analysis_overrides(module.Config, args.launcher, args.set)
    config = _config.load_config(module.Config, args.config, overrides)
    leader = distributed.rank() == 0  # under torchrun, rank 0 alone writes the report
    if leader:
        out = _report.writable_folder(args.out or Path("runs") / name)  # fail before the work
    start = time.perf_counter()
    report = module.run(config, progress=not args.no_progress and leader)
    if not leader:
        return None
    report.config = _config.as_dict(config)
    path = report.write(out)
    print(f"\n{report.title}: finished in {time.perf_counter() - start:.0f} s")
    print(f"  report  {path}")
    print(f"  figures {out / 'figures'} ({len(report.figures)})")
    print(f"  tables  {out / 'tables'} ({len(report.tables)})")
    return path


def sites(args: argparse.Namespace) -> None:
    """Print the site names of one of the toolkit's models, built at default sizes."""
    from . import models
    from .errors import ConfigError
    from .sites import list_sites

    if args.model not in MODELS:
        raise ConfigError(f"unknown model {args.model!r}; expected one of {list(MODELS)}")
    kwargs = {**MODEL_DEFAULTS.get(args.model, {}), **_keywords(args.set)}
    try:
        model = getattr(models, args.model)(**kwargs)
    except TypeError as e:  # a misspelt or missing constructor argument
        raise ConfigError(f"cannot build {args.model} with {kwargs}: {e}") from e
    print("\n".join(list_sites(model)))


def _keywords(items: list[str]) -> dict:
    """`["width=32", "activation=gelu"]` as keyword arguments (Python literals or strings)."""
    import ast

    from .errors import ConfigError

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"argument {item!r} must look like key=value")
        try:
            out[key.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = text.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    from featurebias.analyses import ANALYSES

    parser = argparse.ArgumentParser(prog="featurebias", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, help="TOML or JSON file of config values")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one config value (repeatable)")
        p.add_argument("--out", type=Path, help="output folder")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.add_argument("--launcher", choices=("local", "torchrun", "slurm"),
                       help="where the analysis' jobs run (see docs/distributed.md)")

    listing = "\n".join(f"  {k:<24} {v}" for k, v in ANALYSES.items())
    p = commands.add_parser("demo", help=ANALYSES["demo"])
    with_run_options(p)
    p.set_defaults(go=lambda a: run_analysis("demo", a))

    p = commands.add_parser("run", help="run one analysis", description=f"analyses:\n{listing}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("analysis", help="one of: " + ", ".join(ANALYSES))
    with_run_options(p)
    p.set_defaults(go=lambda a: run_analysis(a.analysis, a))

    p = commands.add_parser("list", help="list the analyses")
    p.set_defaults(go=lambda a: print(listing))

    p = commands.add_parser("sites", help="list the sites of one of the toolkit's models")
    p.add_argument("model", help="one of: " + ", ".join(MODELS))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a model constructor argument (repeatable)")
    p.set_defaults(go=sites)

    args = parser.parse_args(argv)
    try:
        args.go(args)
    except FeatureBiasError as e:
        print(f"featurebias: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
