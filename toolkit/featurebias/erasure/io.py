"""Save and load fitted erasers: safetensors tensors plus a versioned JSON header.

The header (safetensors metadata key `featurebias`) names the eraser class, the format
version and every non-tensor field, so a file is self-describing and loads bit-identically.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import FormatError
from .base import REGISTRY, Eraser

FORMAT_VERSION = 1
HEADER_KEY = "featurebias"


def save(eraser: Eraser, path) -> None:
    """Write `eraser` to `path` (a `.safetensors` file)."""
    tensors, options, absent = {}, {}, []
    for f in dataclasses.fields(eraser):
        value = getattr(eraser, f.name)
        if isinstance(value, torch.Tensor):
            tensors[f.name] = value.detach().contiguous().cpu()
        elif value is None:
            absent.append(f.name)
        else:
            options[f.name] = value
    header = {"format_version": FORMAT_VERSION, "class": type(eraser).__name__,
              "options": options, "none": absent}
    try:
        text = json.dumps(header)
    except TypeError as e:
        raise FormatError(f"{type(eraser).__name__} has a field that JSON cannot hold: {e}") from e
    save_file(tensors, str(Path(path)), metadata={HEADER_KEY: text})


def load(path, device=None) -> Eraser:
    """Restore an eraser written by `Eraser.save`, optionally onto `device`."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"no eraser file at {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path), device=str(device) if device is not None else "cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise FormatError(f"{path} is not a readable safetensors file: {e}") from e
    if HEADER_KEY not in metadata:
        raise FormatError(f"{path} is a safetensors file but not a featurebias eraser "
                          f"(no '{HEADER_KEY}' header)")
    try:
        header = json.loads(metadata[HEADER_KEY])
        version, name = header["format_version"], header["class"]
        options, absent = header["options"], header["none"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise FormatError(f"{path} has a corrupted featurebias header: {e}") from e
    if version != FORMAT_VERSION:
        raise FormatError(f"{path} has format version {version!r}; this featurebias reads "
                          f"version {FORMAT_VERSION}")
    if name not in REGISTRY:
        raise FormatError(f"{path} holds an unknown eraser class {name!r}; known: "
                          f"{sorted(REGISTRY)}")
    cls = REGISTRY[name]
    # Fresh (aligned) copies: safetensors' buffers can sit at odd offsets, and BLAS rounds
    # differently on misaligned memory, which would break bit-identical results.
    tensors = {key: value.clone() for key, value in tensors.items()}
    values = {**options, **tensors, **dict.fromkeys(absent)}
    expected = {f.name for f in dataclasses.fields(cls)}
    if set(values) != expected:
        raise FormatError(f"{path} holds fields {sorted(values)} but {name} has "
                          f"{sorted(expected)}")
    eraser = object.__new__(cls)
    for key, value in values.items():
        object.__setattr__(eraser, key, tuple(value) if isinstance(value, list) else value)
    return eraser
