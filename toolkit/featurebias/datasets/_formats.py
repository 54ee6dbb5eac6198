"""Readers of the real datasets' on-disk formats: idx (MNIST), CIFAR pickles, SVHN .mat."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from ..errors import FormatError

# idx type codes (http://yann.lecun.com/exdb/mnist/, bottom of the page); data are big-endian.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (`.gz` or not) as a numpy array of its declared type and shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise FormatError(f"{path} is not an idx file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise FormatError(f"{path} is truncated inside its header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise FormatError(f"{path} holds {len(raw) - header} data bytes, but its header "
                          f"declares shape {shape} ({expected} bytes)")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


class _ArraysOnly(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a CIFAR batch needs nothing else, and
    refusing every other global keeps a tampered file from running code."""

    # `_codecs.encode` only turns a str into bytes: protocol-2 pickles written by Python 3
    # store bytes that way.
    allowed = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")} | {
        (module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise FormatError(f"refusing to unpickle {module}.{name}: a CIFAR batch holds "
                              "only lists, bytes and numpy arrays")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 python batch as uint8 images `[n, 3, 32, 32]` and int64 labels `[n]`."""
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnly(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise FormatError(f"{path} is not a CIFAR-10 python batch: {e}") from e
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise FormatError(f"{path}: data {data.shape} / labels {labels.shape}; expected "
                          "[n, 3072] and [n]")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar_meta(path: Path) -> tuple[str, ...] | None:
    """Class names from `batches.meta`, or None when the file is absent."""
    if not path.exists():
        return None
    with open(path, "rb") as f:
        meta = _ArraysOnly(f, encoding="bytes").load()
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"])


def read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An SVHN cropped-digits `.mat` file as uint8 `[n, 3, 32, 32]` and labels `[n]` in 0..9.

    The files store `X` as `[32, 32, 3, n]` and digit 0 as label 10.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
        x, y = mat["X"], mat["y"]
    except (ValueError, KeyError, OSError) as e:
        raise FormatError(f"{path} is not an SVHN .mat file: {e}") from e
    if x.ndim != 4 or x.shape[2] != 3 or y.reshape(-1).shape[0] != x.shape[3]:
        raise FormatError(f"{path}: X {x.shape} / y {y.shape}; expected [32, 32, 3, n] and "
                          "[n, 1]")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y.reshape(-1).astype(np.int64) % 10
