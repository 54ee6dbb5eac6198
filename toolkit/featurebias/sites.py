"""Addressing places in a model by name: hook points, module outputs and module inputs.

One naming scheme over three kinds of model:

- TransformerLens models (`TransformerBridge`, any `HookedRootModule`, and the toolkit's own
  models, which are `HookedRootModule`s): the names in `model.hook_dict`, including the
  classic aliases such as `blocks.0.hook_resid_post` that a bridge maps to its own hooks;
- any other `nn.Module`: dotted module paths (`"encoder.fc1"`), the module's output;
- either: a module path with the suffix `":input"` addresses that module's (first) input.
"""

from __future__ import annotations

import dataclasses
import difflib

from torch import nn

from .errors import SiteError

INPUT_SUFFIX = ":input"


@dataclasses.dataclass(frozen=True)
class Site:
    """A resolved site: the module to hook and whether its input or output is meant."""

    name: str
    module: nn.Module
    port: str  # "output" or "input"


def _hook_points(model: nn.Module) -> dict[str, nn.Module]:
    hooks = getattr(model, "hook_dict", None)
    return dict(hooks) if isinstance(hooks, dict) else {}


def list_sites(model: nn.Module, *, modules: bool | None = None) -> list[str]:
    """The site names of `model`.

    Args:
        modules: also list module paths. By default only hook names are listed for
            TransformerLens-style models (they have many modules), and module paths for
            any other model.
    """
    hooks = list(_hook_points(model))
    if modules is None:
        modules = not hooks
    paths = [name for name, _ in model.named_modules() if name] if modules else []
    known = set(hooks)
    return hooks + [p for p in paths if p not in known]


def resolve(model: nn.Module, name: str) -> Site:
    """The `Site` that `name` addresses in `model`; `SiteError` naming the closest valid ones."""
    if not isinstance(name, str) or not name:
        raise SiteError(f"a site is a non-empty string, got {name!r}")
    path, port = (name[: -len(INPUT_SUFFIX)], "input") if name.endswith(INPUT_SUFFIX) else (
        name, "output")
    hooks = _hook_points(model)
    if path in hooks:
        return Site(name, hooks[path], port)
    modules = dict(model.named_modules())
    if path in modules and path:
        return Site(name, modules[path], port)
    candidates = list(hooks) or [m for m in modules if m]
    close = difflib.get_close_matches(path, candidates, n=5, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise SiteError(f"{type(model).__name__} has no site {name!r}{hint} "
                    f"(list_sites(model) lists all {len(candidates)})")
