"""Run models with activations read, replaced or erased at named sites.

Every hook this module registers is removed when its `with` block ends, also when the body
raises; hooks that the user registered are never touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from . import _sharding, layout
from . import distributed as _distributed
from ._progress import tqdm
from .errors import ConfigError, LabelError, SiteError
from .sites import Site, resolve
from .store import ActivationStore

Forward = Callable[[nn.Module, object], object]


def default_forward(model: nn.Module, batch) -> object:
    """Run `model` on a batch: a tensor, the first item of a tuple/list, or a dict of kwargs."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(batch[0])
    return model(batch)


def batch_labels(batch) -> Tensor:
    """The labels of a `(inputs, labels, ...)` batch."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise LabelError("no labels given: pass labels=..., or batches of (inputs, labels)")
    return torch.as_tensor(batch[1])


def _map_output(out, fn):
    if isinstance(out, Tensor):
        return fn(out)
    if isinstance(out, tuple) and out and isinstance(out[0], Tensor):
        return (fn(out[0]), *out[1:])
    raise SiteError(f"cannot patch an output of type {type(out).__name__}; expected a tensor "
                    "or a tuple whose first item is a tensor")


def _register(site: Site, fn: Callable[[Tensor], Tensor | None]):
    """Register `fn` on a site; a `None` return leaves the activation as it was."""
    if site.port == "input":
        def pre_hook(module, args):
            if not args or not isinstance(args[0], Tensor):
                raise SiteError(f"{site.name}: the module's first input is not a tensor")
            new = fn(args[0])
            return None if new is None else (new, *args[1:])
        return site.module.register_forward_pre_hook(pre_hook)

    def hook(module, args, out):
        new = _map_output(out, fn)
        replaced = new[0] if isinstance(new, tuple) else new
        return None if replaced is None else new
    return site.module.register_forward_hook(hook)


@contextlib.contextmanager
def patch_at(model: nn.Module, patches: Mapping[str, Callable[[Tensor], Tensor]]) -> Iterator:
    """Inside the block, the activation at each site is replaced by `fn(activation)`.

    All sites are resolved before any hook is registered, so a bad name changes nothing.
    """
    sites = list(zip(_distinct_sites(model, list(patches), "patch_at"), patches.values(),
                     strict=True))
    handles = []
    try:
        for site, fn in sites:
            handles.append(_register(site, fn))
        yield model
    finally:
        for handle in handles:
            handle.remove()


class Erasure:
    """What `erase_at` yields: the labels that label-dependent erasers (QLEACE, Oracle) use.

    Set `labels` before each forward pass whose batch has other labels than the last one.
    """

    def __init__(self, labels=None):
        self.labels = labels

    @property
    def labels(self) -> Tensor | None:
        return self._labels

    @labels.setter
    def labels(self, value) -> None:
        try:
            self._labels = None if value is None else torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as e:
            raise LabelError(f"labels must be a tensor or array of class ids, got "
                             f"{type(value).__name__}: {e}") from e


@contextlib.contextmanager
def erase_at(model: nn.Module, erasers: Mapping[str, Callable], *, labels=None,
             positions=None) -> Iterator[Erasure]:
    """Context manager: every forward pass inside has the concept erased at those sites.

    Args:
        erasers: `{site: eraser}`; an eraser may also be any function of the activation.
        labels: the labels of the batch the model will run on, for erasers that need them
            (QLEACE, Oracle); `[b]` or, for token activations, `[b, t]`. Over several batches,
            set them per batch on the yielded handle:
            `with erase_at(model, erasers) as erasure: erasure.labels = y; model(x)`.
        positions: token positions to erase at (int, list or slice); all by default.
    """
    handle = Erasure(labels)

    def patch(site: str, eraser):
        needs_labels = getattr(eraser, "requires_labels", False)

        def erase(act: Tensor) -> Tensor:
            z = handle.labels
            if z is None and needs_labels:
                raise LabelError(f"the eraser at {site!r} needs the batch's labels: pass "
                                 "erase_at(..., labels=z), or set .labels on the handle it "
                                 "yields before each forward pass")
            return layout.apply(eraser, act, layout.to_device(z, act.device), positions)
        return erase

    with patch_at(model, {site: patch(site, eraser) for site, eraser in erasers.items()}):
        yield handle


def _checked_sites(model: nn.Module, sites: Sequence[str], reduce, caller: str) -> list[str]:
    """Validate site names and the reduction before any work starts."""
    sites = list(sites)
    if not sites:
        raise ConfigError(f"{caller} needs at least one site")
    _distinct_sites(model, sites, caller)
    layout.check_reduce(reduce)
    return sites


def _distinct_sites(model: nn.Module, names: list[str], caller: str) -> list[Site]:
    """The resolved sites, none named twice nor under two names (a TransformerBridge calls one
    hook point `blocks.0.hook_out` and `blocks.0.hook_resid_post`): an eraser fitted at both
    would be applied twice."""
    if len(set(names)) != len(names):
        raise ConfigError(f"{caller} got repeated sites: {names}")
    sites = [resolve(model, name) for name in names]
    seen: dict[tuple[int, str], str] = {}
    for site in sites:
        other = seen.setdefault((id(site.module), site.port), site.name)
        if other != site.name:
            raise ConfigError(f"{caller} got sites {other!r} and {site.name!r}, two names of "
                              "one activation; keep one of them")
    return sites


class _Enough(Exception):
    """Raised inside a hook to stop a forward pass once every wanted site was seen."""


def _progress(iterable, progress: bool, desc: str):
    total = len(iterable) if hasattr(iterable, "__len__") else None
    return tqdm(iterable, total=total, desc=desc, disable=not progress, leave=False)


def run_capturing(model: nn.Module, batch, sites: Sequence[str], *, forward: Forward,
                  transform: Callable[[Tensor], Tensor] = lambda t: t,
                  stop_early: bool = True) -> dict[str, Tensor]:
    """One forward pass; returns `{site: transform(activation)}` (detached)."""
    captured: dict[str, Tensor] = {}

    def grab(name):
        def fn(act):
            captured[name] = transform(act.detach())
            if stop_early and len(captured) == len(sites):
                raise _Enough
        return fn

    with patch_at(model, {name: grab(name) for name in sites}), torch.no_grad():
        try:
            forward(model, batch)
        except _Enough:
            pass
    missing = [s for s in sites if s not in captured]
    if missing:
        raise SiteError(f"sites {missing} were not reached during the forward pass")
    return captured


def collect(model: nn.Module, batches: Iterable, sites: Sequence[str], *, to=None,
            reduce=None, forward: Forward = default_forward, stop_early: bool = True,
            progress: bool = True, distributed: bool = False, group=None) -> ActivationStore:
    """Run `model` over `batches` and keep the activations at `sites`.

    Args:
        to: None keeps activations where the model computed them; `"cpu"` moves them there;
            a folder path streams them to disk as shards (re-running with the same folder
            resumes an interrupted collection, skipping the batches already stored).
        reduce: for token activations `[b, t, d]`: None (keep all positions), `"mean"`,
            `"last"` or an int position.
        forward: how to run the model on one batch (default: `model(batch)`, or the first
            item of a tuple batch, or `model(**batch)` for dicts).
        stop_early: stop each forward pass once every site is captured (saves the rest).
        distributed: share the batches over the ranks of `group` (torch.distributed; None:
            the default group): rank r runs batches r, r + W, ... (a Sequence is indexed, so
            the others are never built). On disk, every rank writes its own shards into the
            shared folder and gets the merged store back, holding every batch once, in order
            (resumable too). In memory, each rank's store holds its own batches only, under
            their global indices. A collective: every rank calls it.
    """
    sites = _checked_sites(model, sites, reduce, "collect")
    on_disk = to is not None and to != "cpu"
    shared = distributed and _distributed.active(group)
    done: frozenset = frozenset()
    if shared and on_disk:
        store, done = _sharding.open_part(Path(to), sites, group)
    else:
        store = ActivationStore(Path(to) if on_disk else None, sites=sites)
    device = "cpu" if to is not None else None

    def keep(act):
        act = layout.reduce_positions(act, reduce)
        return act if device is None else act.to(device)

    if shared:
        items = _progress(_sharding.owned(batches, group),
                          progress and _distributed.rank(group) == 0, "collect")
    else:
        items = enumerate(_progress(batches, progress, "collect"))
    with _distributed.together("collect", group) if shared else contextlib.nullcontext():
        for index, batch in items:
            if index in store.completed or index in done:
                continue
            store.add(index, run_capturing(model, batch, sites, forward=forward,
                                           transform=keep, stop_early=stop_early))
    if shared and on_disk:
        return _sharding.publish(Path(to), sites, group)
    return store


def _fitter_factory(method: str, num_classes: int, options: dict):
    from .erasure import AlfQleaceFitter, LeaceFitter, OracleFitter, QuadraticFitter

    makers = {
        "leace": lambda d, **kw: LeaceFitter(d, num_classes, method="leace", **kw),
        "orth": lambda d, **kw: LeaceFitter(d, num_classes, method="orth", **kw),
        "oracle": lambda d, **kw: OracleFitter(d, num_classes, **kw),
        "qleace": lambda d, **kw: QuadraticFitter(d, num_classes, **kw),
        "alf-qleace": lambda d, **kw: AlfQleaceFitter(d, num_classes, **kw),
    }
    if method not in makers:
        raise ConfigError(f"method must be one of {tuple(makers)}, got {method!r}")
    # Statistics live where the activations are (a CUDA model fits on its GPU).
    return lambda d, device: makers[method](d, **{"device": device, **options})


class _Labels:
    """Hands out each batch's labels: slices of one tensor, or the batches' own."""

    def __init__(self, labels):
        self.all = None if labels is None else torch.as_tensor(labels)
        self.offset = 0

    def next(self, batch, size: int) -> Tensor:
        if self.all is None:
            return batch_labels(batch)
        chunk = self.all[self.offset:self.offset + size]
        if chunk.shape[0] != size:
            raise LabelError(f"labels has {self.all.shape[0]} rows, fewer than the batches "
                             f"hold (needed rows {self.offset}..{self.offset + size})")
        self.offset += size
        return chunk


def fit_erasers(model: nn.Module, batches: Iterable, labels, sites: Sequence[str], *,
                method: str = "leace", num_classes: int | None = None,
                sequential: bool = False, reduce=None, forward: Forward = default_forward,
                progress: bool = True, distributed: bool = False, group=None,
                **options) -> dict[str, object]:
    """Fit one concept eraser per site on the model's activations.

    Args:
        batches: model inputs (re-iterable when `sequential`); with `labels=None` each batch
            is `(inputs, labels, ...)`.
        labels: one label per example of all batches in order (`[N]`, or `[N, t]` per
            token), or None.
        method: `"leace"`, `"orth"`, `"oracle"`, `"qleace"` or `"alf-qleace"`.
        num_classes: number of classes (inferred from `labels` when given as one tensor).
        sequential: fit site by site, each on activations that the erasers at the earlier
            sites (in the order given) have already changed (concept scrubbing); costs one
            pass over the data per site.
        reduce: token reduction for fitting (see `collect`); erasure then applies at every
            position.
        distributed: share the batches over the ranks of `group` (torch.distributed; None:
            the default group): rank r runs batches r, r + W, ..., then the fitters' statistics
            are merged exactly across ranks before any eraser is computed, so every rank
            returns the same erasers, equal to one process fitting on all batches. Every rank
            passes the same `batches` and `labels`. A collective: every rank calls it.
        options: passed to each fitter (e.g. `svd_tol`, `shrinkage`).

    Returns:
        `{site: eraser}`, ready for `erase_at`.
    """
    sites = _checked_sites(model, sites, reduce, "fit_erasers")
    if num_classes is None:
        if labels is None:
            raise ConfigError("pass num_classes when the labels come with the batches")
        num_classes = int(torch.as_tensor(labels).max()) + 1
    make = _fitter_factory(method, num_classes, options)
    shared = distributed and _distributed.active(group)
    rounds = [[name] for name in sites] if sequential else [sites]
    erasers: dict[str, object] = {}
    for names in _progress(rounds, progress and sequential, "sites"):
        fitters: dict[str, object] = {}
        source = _Labels(labels)
        show, desc = progress and _distributed.rank(group) == 0, f"fit {', '.join(names)}"
        if shared and labels is None:  # labels come with the batches: build only this rank's
            items = _progress(_sharding.owned(batches, group), show, desc)
        else:  # one label tensor: every batch's size is needed for the offsets
            items = enumerate(_progress(batches, show, desc))
        with _distributed.together("fit_erasers", group) if shared else contextlib.nullcontext():
            for index, batch in items:
                z = source.next(batch, _batch_size(batch))
                if shared and not _distributed.owns(index, group):
                    continue
                with erase_at(model, erasers, labels=z):  # the earlier sites, when sequential
                    acts = run_capturing(model, batch, names, forward=forward)
                for name, act in acts.items():
                    x, zz = layout.rows(act, z.to(act.device), reduce)
                    if name not in fitters:
                        fitters[name] = make(x.shape[-1], x.device)
                    fitters[name].update(x, zz)
        if shared:
            _all_reduce_fitters(fitters, names, make, model, group)
        if not fitters:
            raise ConfigError("batches was empty: nothing to fit on")
        # Merged statistics are the same on every rank; the eraser computed from them only
        # up to rounding (BLAS), so rank 0's is sent to all: bit-identical everywhere.
        erasers.update({name: fitter.eraser.broadcast(group=group) if shared else fitter.eraser
                        for name, fitter in fitters.items()})
    return erasers


def _all_reduce_fitters(fitters: dict, names: list[str], make, model: nn.Module, group) -> None:
    """Merge every rank's statistics; a rank that ran no batch joins with empty fitters."""
    widths = {}
    for seen in _distributed.all_gather_object(
            {n: f.stats.mean_x.shape[-1] for n, f in fitters.items()}, group):
        widths.update(seen)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    for name in names:
        if name not in widths:
            continue  # no rank saw a batch: "batches was empty" on every rank
        if name not in fitters:
            fitters[name] = make(widths[name], device)
        fitters[name].all_reduce(group)


def _batch_size(batch) -> int:
    first = batch
    if isinstance(batch, Mapping):
        first = next(v for v in batch.values() if isinstance(v, Tensor))
    elif isinstance(batch, (tuple, list)):
        first = batch[0]
    return torch.as_tensor(first).shape[0]
