"""All-pairs similarity (layers × layers, models × models) as a tidy table for heatmaps."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pandas as pd
from torch import Tensor

from .._progress import tqdm
from ..errors import ConfigError, ShapeError
from ._inputs import matrix
from .measures import resolve


def similarity_matrix(acts, others=None, *, measure="cka", site: str | None = None,
                      progress: bool = True, **kwargs) -> pd.DataFrame:
    """`measure` between every pair of representations of the same stimuli.

    Args:
        acts: `{name: activations [n, ...]}`, an ActivationStore (each site is one
            representation), or `{model: store or {site: tensor}}` together with `site`.
        others: a second collection of the same kinds: pairs are then acts × others (e.g. the
            layers of one model against those of another) instead of acts × acts.
        measure: a name in `MEASURES`, a `Measure` or a callable `f(x, y) -> float`.
        site: the site to take from each store or dict, when `acts` maps names to them.
        **kwargs: passed to the measure (e.g. `k=5` for mutual_knn).

    Returns:
        One row per ordered pair, in the given order, with columns `x`, `y`, `measure`, `value`
        (and `p_value`, `n_permutations` for RSA with permutations). For a heatmap:
        `df.pivot(index="x", columns="y", values="value").loc[names, names]`. A symmetric
        measure is computed once per unordered pair.
    """
    m = resolve(measure)
    left = _collection(acts, site, "acts")
    right = left if others is None else _collection(others, site, "others")
    _same_rows({**{f"acts {k!r}": v for k, v in left.items()},
                **{f"others {k!r}": v for k, v in right.items()}})
    lnames, rnames = list(left), list(right)
    mirror = others is None and m.symmetric
    todo = [(a, b) for i, a in enumerate(lnames) for j, b in enumerate(rnames)
            if not (mirror and j < i)]
    results = {}
    for a, b in tqdm(todo, desc=f"similarity ({m.name})", disable=not progress or len(todo) < 2,
                     leave=False):
        results[a, b] = _fields(m(left[a], right[b], **kwargs))
    rows = [{"x": a, "y": b, "measure": m.name,
             **(results[a, b] if (a, b) in results else results[b, a])}
            for a in lnames for b in rnames]
    return pd.DataFrame(rows)


def _fields(result) -> dict:
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return {"value": float(result)}


def _is_store(obj) -> bool:
    # Duck-typed: similarity/ is pure tensor code and must not import the store module.
    return not isinstance(obj, Mapping) and hasattr(obj, "sites") and hasattr(obj, "__getitem__")


def _collection(acts, site, what: str) -> dict[str, Tensor]:
    if _is_store(acts):
        if site is not None:
            raise ConfigError(f"site={site!r} selects one site per model in a dict of stores; "
                              f"{what} is a single store, whose sites are all compared")
        acts = {s: acts[s] for s in acts.sites}
    if not isinstance(acts, Mapping) or not acts:
        raise ConfigError(f"{what} is an empty or unsupported {type(acts).__name__}; expected "
                          "a non-empty {name: activations} dict or an ActivationStore")
    nested = [isinstance(v, Mapping) or _is_store(v) for v in acts.values()]
    if any(nested):
        if not all(nested):
            raise ConfigError(f"{what} mixes tensors with stores/dicts; expected one kind")
        if site is None:
            raise ConfigError(f"{what} maps names to stores or dicts; pass site=... to choose "
                              "the site compared across them")
        missing = [k for k, v in acts.items() if site not in (v.sites if _is_store(v) else v)]
        if missing:
            raise ConfigError(f"site {site!r} is missing from {missing} in {what}")
        acts = {k: v[site] for k, v in acts.items()}
    elif site is not None:
        raise ConfigError(f"site={site!r} applies to a dict of stores/dicts, but {what} maps "
                          "names to tensors")
    return {str(k): matrix(v, f"{what} {k!r}") for k, v in acts.items()}


def _same_rows(blocks: dict[str, Tensor]) -> None:
    rows = {name: t.shape[0] for name, t in blocks.items()}
    first = next(iter(rows))
    for name, n in rows.items():
        if n != rows[first]:
            raise ShapeError(f"{name} has {n} rows but {first} has {rows[first]}; expected the "
                             "same stimuli (rows) in every representation")
