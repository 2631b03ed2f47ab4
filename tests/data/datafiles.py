"""Tiny data files in the real formats, written by the tests themselves (shared by the data tests)."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct

import numpy as np


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- MNIST: IDX files -------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000 08 <ndim>, big-endian uint32 sizes, then the data."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def mnist_arrays(seed: int = 0, n_train: int = 12, n_test: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def mnist_files(arrays: dict[str, np.ndarray], gz: bool = True) -> dict[str, bytes]:
    return {(f"{stem}.gz" if gz else stem): (gzip.compress(idx_bytes(a)) if gz else idx_bytes(a))
            for stem, a in arrays.items()}


# --- CIFAR: Python 2 pickle batches in a tarball ----------------------------------------------------------


class Py2Pickler(pickle._Pickler):
    """Writes pickles as Python 2's cPickle did for the CIFAR batches: protocol 2, ``str`` as BINSTRING
    (byte strings), NumPy's ``_reconstruct`` under its old module name ``numpy.core.multiarray``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file):
        super().__init__(file, protocol=2)

    def _save_py2_string(self, obj) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_string
    dispatch[bytes] = _save_py2_string

    def save_global(self, obj, name=None) -> None:
        module = getattr(obj, "__module__", None)
        if module == "numpy._core.multiarray" and obj.__name__ == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)

    dispatch[type] = save_global


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer).dump(obj)
    return buffer.getvalue()


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A .tar.gz holding ``members`` (path -> content)."""
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def cifar_batches(name: str, seed: int = 0, dump=py2_pickle) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """Tiny CIFAR-10/100 batch files in the official layout, and the arrays they hold.

    CIFAR-10: five train batches of 2 images and a test batch of 3; CIFAR-100: a train file of 6 images
    and a test file of 3. Returns ``({member path: pickled batch}, {"x_train", "y_train", ...: arrays})``.
    """
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder, splits, classes = "cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)],
                                                          "test": ["test_batch"]}, 10
        sizes = {"train": 2, "test": 3}
        extra = {"batches.meta": {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}}
    else:
        folder, splits, classes = "cifar-100-python", {"train": ["train"], "test": ["test"]}, 100
        sizes = {"train": 6, "test": 3}
        extra = {"meta": {"fine_label_names": [f"f{i}" for i in range(100)],
                          "coarse_label_names": [f"c{i}" for i in range(20)]}}
    files, arrays = {}, {}
    for split, batches in splits.items():
        xs, ys, coarse = [], [], []
        for batch in batches:
            n = sizes[split]
            x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            y = rng.integers(0, classes, n).tolist()
            content = {"batch_label": f"{batch} of the tests", "data": x,
                       "filenames": [f"img{i}.png" for i in range(n)]}
            if name == "cifar10":
                content["labels"] = y
            else:
                c = rng.integers(0, 20, n).tolist()
                content.update(fine_labels=y, coarse_labels=c)
                coarse += c
            files[f"{folder}/{batch}"] = dump(content)
            xs.append(x)
            ys += y
        arrays[f"x_{split}"] = np.concatenate(xs)
        arrays[f"y_{split}"] = np.array(ys)
        if coarse:
            arrays[f"coarse_{split}"] = np.array(coarse)
    for batch, content in extra.items():
        files[f"{folder}/{batch}"] = dump(content)
    return files, arrays


class Exploit:
    """Unpickling this runs a shell command: what a malicious data file would do."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def object_array(items: list) -> np.ndarray:
    """A 1-D object array of ``items`` (np.array would make a 2-D array of equal-length lists)."""
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def imdb_npz(x_train: list[list[int]], y_train, x_test: list[list[int]], y_test) -> bytes:
    """Keras's imdb.npz layout: object arrays of lists of word ranks, int labels; written by np.savez."""
    buffer = io.BytesIO()
    np.savez(buffer, x_train=object_array(x_train), y_train=np.asarray(y_train), x_test=object_array(x_test),
             y_test=np.asarray(y_test))
    return buffer.getvalue()


# --- CIFAR-N: torch.save zips of a dict of NumPy arrays ---------------------------------------------------


class _Numpy1Pickler(pickle._Pickler):
    """Pickles NumPy arrays as NumPy 1 did for the published CIFAR-N files: ``_reconstruct`` under its old
    module name ``numpy.core.multiarray`` (NumPy 2 writes ``numpy._core.multiarray``)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_global(self, obj, name=None) -> None:
        if getattr(obj, "__module__", None) == "numpy._core.multiarray" and obj.__name__ == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


class _Numpy1PickleModule:
    Pickler = _Numpy1Pickler


def torch_save_bytes(obj, *, numpy1: bool = True) -> bytes:
    """``torch.save(obj)`` as the CIFAR-N files were written: pickle protocol 2 in torch's zip format."""
    import torch

    buffer = io.BytesIO()
    kwargs = {"pickle_module": _Numpy1PickleModule} if numpy1 else {}
    torch.save(obj, buffer, pickle_protocol=2, **kwargs)
    return buffer.getvalue()


def cifar_n_labels(dataset: str, n: int = 50_000, seed: int = 0, rates=None) -> dict:
    """CIFAR-N-like labels: ``clean_label`` and each noisy label set differing from it at ``rates``
    (CIFAR-10: aggre 0.1, random1-3 0.2, worse 0.4; CIFAR-100: noisy 0.4, with coarse lists)."""
    rng = np.random.default_rng(seed)
    C = 10 if dataset == "cifar10" else 100
    clean = np.arange(n, dtype=np.int64) % C  # every class present
    rng.shuffle(clean)
    if rates is None:
        rates = ({"aggre_label": 0.1, "worse_label": 0.4, "random_label1": 0.2, "random_label2": 0.2,
                  "random_label3": 0.2} if dataset == "cifar10" else {"noisy_label": 0.4})
    labels = {"clean_label": clean}
    for key, rate in rates.items():
        flip = rng.random(n) < rate
        labels[key] = np.where(flip, (clean + rng.integers(1, C, n)) % C, clean).astype(np.int64)
    if dataset == "cifar100":
        labels["clean_coarse_label"] = (labels["clean_label"] // 5).tolist()  # lists, as published
        labels["noisy_coarse_label"] = (labels["noisy_label"] // 5).tolist()
    return labels
