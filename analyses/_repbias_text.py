"""The numbers the representation-bias narrative states, recorded as it states them.

Every number in the text goes through `Headline`, which formats it and keeps a row
(`experiment, quantity, value, kind`), so the report's `headline` table holds exactly what the
prose says and a test can check one against the other.
"""

from __future__ import annotations

import math

import pandas as pd

from featurebias.errors import ConfigError

KINDS = ("fraction", "correlation", "step")


def show(value: float, kind: str = "fraction") -> str:
    """`value` as the narrative prints it: a percentage, a correlation, or a step count."""
    if not math.isfinite(value):
        return "n/a"
    if kind == "fraction":
        text = f"{value:.1%}"
    elif kind == "correlation":
        text = f"{value:.3f}"
    else:
        text = f"{value:.0f}"
    # A tiny negative value (an R² estimated on held-out rows) would print as "-0.0%".
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text) else text


class Headline:
    """Collects `(experiment, quantity, value, kind)` rows; `say` formats and records one."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def experiment(self, name: str) -> Say:
        return Say(self, name)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["experiment", "quantity", "value", "kind"])


class Say:
    """`say(quantity, value, kind)`: the formatted value, recorded under one experiment."""

    def __init__(self, headline: Headline, experiment: str):
        self.headline, self.name = headline, experiment

    def __call__(self, quantity: str, value: float, kind: str = "fraction") -> str:
        if kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS}, got {kind!r}")
        self.headline.rows.append({"experiment": self.name, "quantity": quantity,
                                   "value": float(value), "kind": kind})
        return show(float(value), kind)


def unlearned(accuracy, what: str = "", threshold: float = 0.95) -> str:
    """A warning sentence naming the features whose accuracy is below `threshold`, else ""."""
    low = [name for name, value in accuracy.items() if value < threshold]
    if not low:
        return ""
    names = " and ".join(f"'{n}'" for n in low)
    return (f" Note: {names} stayed below {threshold:.0%} validation accuracy{what}, so "
            f"{'its' if len(low) == 1 else 'their'} variance share partly measures an "
            "unlearned feature; train longer (`steps` and friends) to compare learned features.")
