"""Colours keyed by name, so a feature (or eraser, probe, ...) has one colour in every figure."""

from __future__ import annotations

import colorsys
from collections.abc import Hashable, Iterable, Mapping

from matplotlib.colors import to_rgb

from ..errors import ConfigError

Colour = tuple[float, float, float]

# seaborn's "colorblind" palette without its grey, which is kept for the reference names below.
_BASE: tuple[str, ...] = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161",
                          "#56b4e9", "#ece133", "#fbafe4")

# Totals, remainders and "no treatment" read as references, whatever the kind.
FIXED: dict[str, Colour] = {
    "joint": to_rgb("#404040"),
    "all": to_rgb("#404040"),
    "residual": to_rgb("#c8c8c8"),
    "unexplained": to_rgb("#c8c8c8"),
    "none": to_rgb("#949494"),
    "chance": to_rgb("#000000"),
}

_REGISTRY: dict[str, dict[Hashable, Colour]] = {}


def _extra(i: int) -> Colour:
    # Past the base colours: hues spread by the golden ratio stay distinct from each other.
    return colorsys.hls_to_rgb((0.11 + 0.618034 * i) % 1.0, 0.5, 0.65)


def palette(names: Iterable[Hashable], kind: str = "feature") -> dict[Hashable, Colour]:
    """One colour per name, the same for that name (and `kind`) in every figure of a session.

    A name first seen gets the first base colour its kind has not used yet; the reference
    names in `FIXED` ("joint", "all", "residual", "none", ...) are always shades of grey.
    """
    registry = _REGISTRY.setdefault(kind, {})
    for name in names:
        if str(name) in FIXED or name in registry:
            continue
        used = set(registry.values())
        free = [c for c in map(to_rgb, _BASE) if c not in used]
        registry[name] = free[0] if free else _extra(len(registry) - len(_BASE))
    return {name: registry[name] if name in registry else FIXED[str(name)] for name in names}


def set_palette(colours: Mapping[Hashable, object], kind: str = "feature") -> None:
    """Pin colours (any matplotlib colour spec) for names of `kind`, e.g. `{"easy": "C0"}`."""
    parsed = {}
    for name, colour in colours.items():
        try:
            parsed[name] = to_rgb(colour)
        except ValueError as e:
            raise ConfigError(f"colour {colour!r} for {name!r} is not a matplotlib colour "
                              "(a name, '#rrggbb' or an RGB tuple)") from e
    _REGISTRY.setdefault(kind, {}).update(parsed)


def reset_palette(kind: str | None = None) -> None:
    """Forget the colours given so far (of one kind, or all)."""
    if kind is None:
        _REGISTRY.clear()
    else:
        _REGISTRY.pop(kind, None)
