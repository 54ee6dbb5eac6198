"""The `featurebias` command."""

from __future__ import annotations

import argparse
import sys

from .errors import FeatureBiasError


def demo(args: argparse.Namespace) -> None:
    """Erase the digit class from scikit-learn's digits and show what probes still find."""
    import pandas as pd
    import torch
    from sklearn.datasets import load_digits

    from .erasure import (
        AlfQleaceEraser,
        IdentityEraser,
        LeaceEraser,
        QuadraticEraser,
        check_guardedness,
    )

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0)
    z = torch.tensor(digits.target)
    print(f"digits: {x.shape[0]} images, d = {x.shape[1]}, k = {int(z.max()) + 1} classes\n")
    # Shrinkage for the quadratic methods: the digits' class covariances are singular.
    erased = {
        "none": IdentityEraser()(x),
        "LEACE": LeaceEraser.fit(x, z)(x),
        "QLEACE": QuadraticEraser.fit(x, z, shrinkage=True)(x, z),
        "ALF-QLEACE": AlfQleaceEraser.fit(x, z, shrinkage=True)(x),
    }
    rows = []
    for name, data in erased.items():
        report = check_guardedness(data, z, cv=args.folds, seed=args.seed)
        frame = report.to_frame().assign(eraser=name)
        rows.append(frame)
        print(f"  {name:<11} linear probe {report.linear_accuracy:6.1%}   "
              f"quadratic probe {report.quadratic_accuracy:6.1%}   "
              f"(prior {report.prior_accuracy:.1%})")
    table = pd.concat(rows, ignore_index=True)[["eraser", "probe", "accuracy", "log_loss_bits"]]
    print("\nHeld-out probe scores (log-loss in bits):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="featurebias", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("demo", help="erase a concept from digits and probe what is left")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=demo)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except FeatureBiasError as e:
        print(f"featurebias: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
