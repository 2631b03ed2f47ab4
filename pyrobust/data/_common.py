"""What every data set shares: the ``Dataset`` record, the data root, the errors, and safe unpickling."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

#: Environment variable naming the data root (overridden by an explicit ``root`` argument).
DATA_ROOT_ENV = "PYROBUST_DATA"


@dataclass(frozen=True, eq=False)  # eq would compare tensors elementwise
class Dataset:
    """A loaded data set: train and test tensors, ready for training.

    ``x_*``: MNIST float32 ``N x 784`` in [0, 1]; CIFAR float32 ``N x 3 x 32 x 32`` (pixel mean of the train
    set subtracted); IMDB int64 ``N x 400`` word ids in [0, 5000). ``y_*``: int64 ``N`` class indices in
    ``[0, num_classes)``. ``coarse_*``: CIFAR-100's 20 super-class labels (int64 ``N``), else ``None``.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    coarse_train: torch.Tensor | None = None
    coarse_test: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            coarse = getattr(self, f"coarse_{split}")
            if y.dtype != torch.int64 or y.dim() != 1 or len(x) != len(y):
                raise ValueError(f"{self.name}: y_{split} must be int64 of length {len(x)}, got {y.dtype} "
                                 f"{tuple(y.shape)}")
            if coarse is not None and coarse.shape != y.shape:
                raise ValueError(f"{self.name}: coarse_{split} has shape {tuple(coarse.shape)}, "
                                 f"expected {tuple(y.shape)}")


class DatasetNotAvailable(FileNotFoundError):
    """The files of a data set are not on disk (or cannot be downloaded); the message says what to put where."""


class DataFormatError(ValueError):
    """A data file exists but is corrupted or not in the expected format; the message names the file."""


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding the data sets: ``root`` if given, else ``$PYROBUST_DATA``, else ``./data``.

    Returned as an absolute path (so messages say exactly where files go); it need not exist yet.
    """
    if root is None:
        root = os.environ.get(DATA_ROOT_ENV) or "data"
    return Path(os.path.abspath(os.path.expanduser(os.fspath(root))))


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class _RestrictedUnpickler(pickle.Unpickler):
    # What a pickled NumPy array needs, and nothing else: dicts, lists, strings, bytes and numbers are built
    # by opcodes without any global, so a payload that names any other callable (os.system, eval,
    # builtins.getattr, ...) is refused before it can run.
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.empty(0))[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.empty(0))[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}") from None


def safe_unpickle(file: BinaryIO | bytes, what: str) -> Any:
    """Unpickle data that may come from anywhere, admitting only NumPy arrays and builtin containers.

    ``what`` names the source in errors. Python 2 pickles (the CIFAR batches, Keras's ``imdb.npz``) are read
    with ``encoding="latin1"``, the encoding NumPy requires for arrays pickled by Python 2. Any failure,
    a forbidden global included, raises ``DataFormatError`` naming ``what``.
    """
    if isinstance(file, bytes):
        file = io.BytesIO(file)
    try:
        return _RestrictedUnpickler(file, encoding="latin1").load()
    except Exception as err:  # a malformed pickle can raise almost anything; all mean "bad file"
        raise DataFormatError(f"{what}: not a valid pickle of plain data ({type(err).__name__}: {err})") from err

