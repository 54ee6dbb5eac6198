"""CIFAR-10, SVHN, MNIST and Fashion-MNIST from a local folder in their official formats.

Nothing is downloaded unless `download=True`; then plain urllib fetches the official files
(checked against their published MD5) into the folder, in torchvision's layout, so a folder
that torchvision filled works too.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .._progress import tqdm
from ..errors import FeatureBiasError, FormatError
from . import _formats
from .base import TaskData, split_indices, split_sizes, take


class DatasetNotFoundError(FeatureBiasError, FileNotFoundError):
    """A dataset's files are not in the folder given (and were not to be downloaded)."""


CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
SVHN_MD5 = {"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
            "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3"}
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_MD5 = dict(zip(IDX_FILES, ("f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                 "d53e105ee54ea40749a09fcbcd1e9432",
                                 "9fb629c4189551a2d022fa330f9573f3",
                                 "ec29112dd5afa0611ce80d1b7f02629c"), strict=True))
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MD5 = dict(zip(IDX_FILES, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                   "25c81989df183df01b3e8a0aad5dffbe",
                                   "bef4ecab320f06d8554ea6380940ec79",
                                   "bb300cfdad3c16e7a12a480ee83cd310"), strict=True))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
DIGITS = tuple(str(i) for i in range(10))


def cifar10(root, *, download: bool = False, val_fraction: float = 0.1, seed: int = 0,
            progress: bool = True) -> TaskData:
    """CIFAR-10 from `root/cifar-10-batches-py` (the python version: `data_batch_1..5`,
    `test_batch`); x float32 `[n, 3, 32, 32]` in [0, 1], y `[n]` int64 in 0..9.

    Args:
        root: the folder holding `cifar-10-batches-py/` (or that folder itself).
        download: fetch and extract the official archive into `root` when missing.
        val_fraction: share of the official training set held out as `val` (stratified,
            seeded); `test` is the official test batch.
    """
    root = Path(root)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    folder = _find([root / "cifar-10-batches-py", root], names)
    if folder is None and download:
        archive = root / "cifar-10-python.tar.gz"
        _download(CIFAR10_URL, archive, CIFAR10_MD5, progress)
        _extract(archive, root)
        folder = _find([root / "cifar-10-batches-py"], names)
    if folder is None:
        raise _missing("CIFAR-10", root, "cifar-10-batches-py/{data_batch_1..5, test_batch}",
                       CIFAR10_URL)
    batches = [_formats.read_cifar_batch(folder / n) for n in names]
    train = tuple(np.concatenate(parts) for parts in zip(*batches[:5], strict=True))
    classes = _formats.read_cifar_meta(folder / "batches.meta") or CIFAR10_CLASSES
    return _task(train, batches[5], val_fraction, seed, "class", classes, folder)


def svhn(root, *, download: bool = False, val_fraction: float = 0.1, seed: int = 0,
         progress: bool = True) -> TaskData:
    """SVHN cropped digits from `root/{train,test}_32x32.mat`; x float32 `[n, 3, 32, 32]` in
    [0, 1], y `[n]` int64 in 0..9 (the files' label 10 is digit 0).

    Args: as in `cifar10` (the `extra` set is not used).
    """
    root = Path(root)
    names = ["train_32x32.mat", "test_32x32.mat"]
    folder = _find([root, root / "svhn"], names)
    if folder is None and download:
        for name in names:
            if not (root / name).exists():
                _download(SVHN_URL + name, root / name, SVHN_MD5[name], progress)
        folder = root
    if folder is None:
        raise _missing("SVHN", root, "train_32x32.mat and test_32x32.mat", SVHN_URL)
    train, test = (_formats.read_svhn(folder / n) for n in names)
    return _task(train, test, val_fraction, seed, "digit", DIGITS, folder)


def mnist(root, *, download: bool = False, val_fraction: float = 0.1, seed: int = 0,
          progress: bool = True) -> TaskData:
    """MNIST from idx files (`train-images-idx3-ubyte[.gz]`, ...) in `root` or
    `root/MNIST/raw`; x float32 `[n, 1, 28, 28]` in [0, 1], y `[n]` int64.

    Args: as in `cifar10`; downloads go to `root/MNIST/raw`.
    """
    return _idx_task("MNIST", Path(root), ["MNIST/raw", "mnist"], MNIST_URL, MNIST_MD5,
                     download, val_fraction, seed, progress, "digit", DIGITS)


def fashion_mnist(root, *, download: bool = False, val_fraction: float = 0.1, seed: int = 0,
                  progress: bool = True) -> TaskData:
    """Fashion-MNIST from idx files in `root` or `root/FashionMNIST/raw` (same names and
    format as MNIST); x float32 `[n, 1, 28, 28]` in [0, 1], y `[n]` int64.

    Args: as in `cifar10`; downloads go to `root/FashionMNIST/raw`.
    """
    return _idx_task("FashionMNIST", Path(root), ["FashionMNIST/raw", "fashion-mnist"],
                     FASHION_URL, FASHION_MD5, download, val_fraction, seed, progress, "class",
                     FASHION_CLASSES)


def _idx_task(name: str, root: Path, subfolders: list[str], url: str, md5: dict[str, str],
              download: bool, val_fraction: float, seed: int, progress: bool, feature: str,
              classes: Sequence[str]) -> TaskData:
    folder = _find([root] + [root / s for s in subfolders], IDX_FILES)
    if folder is None and download:
        folder = root / subfolders[0]
        for stem in IDX_FILES:
            if _locate(folder, stem) is None:
                _download(f"{url}{stem}.gz", folder / f"{stem}.gz", md5[stem], progress)
    if folder is None:
        raise _missing(name, root, ", ".join(f"{s}[.gz]" for s in IDX_FILES), url)
    images, labels, test_images, test_labels = (
        _formats.read_idx(_locate(folder, stem)) for stem in IDX_FILES)
    for x, y, split in ((images, labels, "train"), (test_images, test_labels, "t10k")):
        if x.ndim != 3 or y.shape != (x.shape[0],):
            raise FormatError(f"{folder}: {split} images {x.shape} and labels {y.shape}; "
                              "expected [n, h, w] and [n]")
    return _task((images[:, None], labels), (test_images[:, None], test_labels), val_fraction,
                 seed, feature, classes, folder)


def _task(train, test, val_fraction: float, seed: int, feature: str, classes: Sequence[str],
          folder: Path) -> TaskData:
    """Pixels to float32 in [0, 1]; a stratified, seeded val split out of the training set."""
    def pair(images, labels):
        return (torch.from_numpy(np.ascontiguousarray(images)).float().div_(255),
                torch.from_numpy(np.asarray(labels, dtype=np.int64)))

    x, y = pair(*train)
    n_train, n_val, _ = split_sizes(len(y), val_fraction, 0)
    keep, held = split_indices(len(y), (n_train, n_val), seed=seed, stratify=y)
    info = {"source": str(folder), "classes": tuple(classes), "seed": seed,
            "indices": {"train": keep, "val": held}}
    return TaskData(take((x, y), keep), take((x, y), held), pair(*test),
                    num_classes=(len(classes),), feature_names=(feature,), info=info)


def _locate(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _find(folders: list[Path], stems: Sequence[str]) -> Path | None:
    """The first folder holding every file (each possibly gzipped), or None."""
    return next((f for f in folders if all(_locate(f, s) for s in stems)), None)


def _missing(name: str, root: Path, files: str, url: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"{name} not found: expected {files} in {root} (or the usual subfolder). Pass "
        f"download=True to fetch it from {url}, or download it there yourself.")


def _download(url: str, dest: Path, md5: str, progress: bool) -> None:
    """Fetch `url` to `dest` through a temporary file; raise unless its MD5 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                      disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as e:
        part.unlink(missing_ok=True)
        raise DatasetNotFoundError(f"could not download {url} ({e}); the network may be "
                                   f"unreachable. Put the file at {dest} yourself.") from e
    if digest.hexdigest() != md5:
        part.unlink(missing_ok=True)
        raise FormatError(f"{url} downloaded with MD5 {digest.hexdigest()}, expected {md5}; "
                          "the file is corrupted or not the official one")
    os.replace(part, dest)


def _extract(archive: Path, root: Path) -> None:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # refuses absolute paths, `..` and devices
            tar.extractall(root, filter="data")
            return
        base = root.resolve()
        for member in tar.getmembers():
            target = (root / member.name).resolve()
            outside = base not in target.parents and target != base
            if outside or not (member.isfile() or member.isdir()):
                raise FormatError(f"{archive} holds an unsafe member {member.name!r}")
        tar.extractall(root)  # noqa: S202 (members checked above)

