"""Real-dataset loaders on tiny fake folders in the official on-disk formats (no network)."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest
import scipy.io
import torch

from featurebias.datasets import DatasetNotFoundError, cifar10, fashion_mnist, folders, mnist, svhn
from featurebias.errors import FeatureBiasError, FormatError


def cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"fake", b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}


def write_cifar(folder, per_batch: int = 4) -> tuple[list[dict], dict]:
    folder.mkdir(parents=True)
    train = [cifar_batch(per_batch, i) for i in range(5)]
    for i, batch in enumerate(train, 1):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    test = cifar_batch(3, 9)
    (folder / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
    names = [f"class{i}".encode() for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    return train, test


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding, written from the format description (magic 0, 0, 0x08, ndim)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(folder, n_train: int = 12, n_test: int = 5, gz=(True, False, False, True)):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train),
              rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test)]
    for stem, array, zipped in zip(folders.IDX_FILES, arrays, gz, strict=True):
        data = idx_bytes(array)
        if zipped:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


def test_cifar10_round_trip(tmp_path):
    train, test = write_cifar(tmp_path / "cifar-10-batches-py")
    task = cifar10(tmp_path, val_fraction=0.25, seed=1)
    pixels = np.concatenate([b[b"data"] for b in train]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([b[b"labels"] for b in train])
    idx = task.info["indices"]
    assert (len(idx["train"]), len(idx["val"])) == (15, 5)
    assert sorted(torch.cat([idx["train"], idx["val"]]).tolist()) == list(range(20))
    for split in ("train", "val"):
        x, y = task.split(split)
        assert x.shape[1:] == (3, 32, 32) and x.dtype == torch.float32
        assert np.array_equal((x * 255).round().byte().numpy(), pixels[idx[split].numpy()])
        assert np.array_equal(y.numpy(), labels[idx[split].numpy()])
    x, y = task.test
    assert np.array_equal((x * 255).round().byte().numpy(),
                          test[b"data"].reshape(-1, 3, 32, 32))
    # channel planes: the first 1024 values of a row are the red plane, row-major
    assert float(x[0, 0, 0, 1]) * 255 == pytest.approx(float(test[b"data"][0, 1]))
    assert float(x[0, 1, 0, 0]) * 255 == pytest.approx(float(test[b"data"][0, 1024]))
    assert task.info["classes"][3] == "class3" and task.num_classes == (10,)
    # the folder itself works as root too
    again = cifar10(tmp_path / "cifar-10-batches-py", val_fraction=0.25, seed=1)
    assert torch.equal(again.train[0], task.train[0])


def test_svhn_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    for name, n in (("train_32x32.mat", 9), ("test_32x32.mat", 4)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
        y[0] = 10  # the files' label for digit 0
        scipy.io.savemat(tmp_path / name, {"X": x, "y": y})
        if name.startswith("test"):
            x_test, y_test = x, y
    task = svhn(tmp_path, val_fraction=0.0)
    x, y = task.test
    assert x.shape == (4, 3, 32, 32) and int(y[0]) == 0
    assert np.array_equal(y.numpy(), y_test[:, 0] % 10)
    i, c, h, w = 2, 1, 5, 7
    assert float(x[i, c, h, w]) * 255 == pytest.approx(float(x_test[h, w, c, i]))
    assert len(task.train[0]) == 9 and len(task.val[0]) == 0


@pytest.mark.parametrize("loader, sub", [(mnist, "MNIST/raw"), (mnist, ""),
                                         (fashion_mnist, "FashionMNIST/raw")])
def test_idx_round_trip_plain_and_gzipped(tmp_path, loader, sub):
    arrays = write_idx(tmp_path / (sub or "data"))
    root = tmp_path if sub else tmp_path / "data"  # files directly in root, or the subfolder
    task = loader(root, val_fraction=0.25, seed=0)
    idx = task.info["indices"]
    x, y = task.split("train")
    assert x.shape[1:] == (1, 28, 28) and x.dtype == torch.float32
    assert np.array_equal((x[:, 0] * 255).round().long().numpy(), arrays[0][idx["train"]])
    assert np.array_equal(y.numpy(), arrays[1][idx["train"]])
    assert np.array_equal((task.test[0][:, 0] * 255).round().long().numpy(), arrays[2])
    assert len(task.val[0]) == 3


@pytest.mark.parametrize("loader, what", [(cifar10, "CIFAR-10"), (svhn, "SVHN"),
                                          (mnist, "MNIST"), (fashion_mnist, "FashionMNIST")])
def test_missing_folder_says_where_and_how(tmp_path, loader, what):
    with pytest.raises(DatasetNotFoundError, match=what) as info:
        loader(tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "download=True" in message
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, FeatureBiasError)


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def cifar_archive(tmp_path) -> bytes:
    write_cifar(tmp_path / "src" / "cifar-10-batches-py", per_batch=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buffer.getvalue()


def test_download_checks_md5_and_extracts(tmp_path, monkeypatch):
    archive = cifar_archive(tmp_path)
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return FakeResponse(archive)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(FormatError, match="MD5"):  # not the official archive
        cifar10(tmp_path / "data", download=True, progress=False)
    assert not list((tmp_path / "data").glob("*.part"))
    monkeypatch.setattr(folders, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    task = cifar10(tmp_path / "data", download=True, progress=False, val_fraction=0.2)
    assert urls == [folders.CIFAR10_URL] * 2
    assert len(task.train[0]) + len(task.val[0]) == 10 and len(task.test[0]) == 3
    cifar10(tmp_path / "data", download=True, progress=False)  # present: no second fetch
    assert len(urls) == 2


def test_download_without_network_is_a_clear_error(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetNotFoundError, match="could not download"):
        mnist(tmp_path, download=True, progress=False)


def test_corrupt_files_raise_format_errors(tmp_path):
    write_idx(tmp_path / "a")
    (tmp_path / "a" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08"))
    with pytest.raises(FormatError, match="idx"):
        mnist(tmp_path / "a")
    write_idx(tmp_path / "b")
    data = idx_bytes(np.zeros(7, dtype=np.uint8))[:-2]
    (tmp_path / "b" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(data))
    with pytest.raises(FormatError, match="declares"):
        mnist(tmp_path / "b")


class Hostile:
    def __reduce__(self):
        return (print, ("this must not run",))


def test_cifar_pickles_cannot_run_code(tmp_path, capsys):
    write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(
        pickle.dumps({b"data": Hostile(), b"labels": []}))
    with pytest.raises(FormatError, match="refusing"):
        cifar10(tmp_path)
    assert "must not run" not in capsys.readouterr().out
