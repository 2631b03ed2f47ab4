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
    set subtracted); IMDB int64 ``N x 400`` word ids in [0, 5000); a data set of your own
    (:mod:`pyrobust.data.arrays`) float32 ``N x d`` or ``N x C x H x W``. ``y_*``: int64 ``N`` class indices
    in ``[0, num_classes)``. ``coarse_*``: CIFAR-100's 20 super-class labels (int64 ``N``), else ``None``.

    Trusted labels of the training set, where a data set carries them beside its (noisy) ``y_train`` — at
    most one of the two forms, both ``None`` for the paper's data sets (whose ``y_train`` is clean):

    - ``y_train_clean``: int64 ``N_train``, the clean label of every training example (the true ``T`` is
      then counted from ``(y_train_clean, y_train)``);
    - ``clean_indices`` + ``clean_labels``: int64 ``k`` each, a trusted subset: the distinct training
      examples ``clean_indices`` (in ``[0, N_train)``) have clean labels ``clean_labels``.

    Raises:
        ValueError: a label tensor is not int64 1-D of the right length, a trusted label or index is out of
            range, or both forms of trusted labels are given.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    coarse_train: torch.Tensor | None = None
    coarse_test: torch.Tensor | None = None
    y_train_clean: torch.Tensor | None = None
    clean_indices: torch.Tensor | None = None
    clean_labels: torch.Tensor | None = None

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
        n, C = len(self.y_train), self.num_classes
        if self.y_train_clean is not None:
            if self.clean_indices is not None or self.clean_labels is not None:
                raise ValueError(f"{self.name}: give y_train_clean or clean_indices + clean_labels, not both")
            _check_labels(self.name, "y_train_clean", self.y_train_clean, n, C)
        elif (self.clean_indices is None) != (self.clean_labels is None):
            raise ValueError(f"{self.name}: clean_indices and clean_labels go together")
        elif self.clean_indices is not None:
            k = len(self.clean_indices)
            _check_labels(self.name, "clean_indices", self.clean_indices, k, n)
            _check_labels(self.name, "clean_labels", self.clean_labels, k, C)
            if len(torch.unique(self.clean_indices)) != k:
                raise ValueError(f"{self.name}: clean_indices repeats a training example")

    def trusted_labels(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(indices, clean labels)`` of the training examples with a trusted label (int64 ``k`` each), or
        ``None`` when the data set carries none (all ``N_train`` examples for ``y_train_clean``)."""
        if self.y_train_clean is not None:
            return torch.arange(len(self.y_train_clean)), self.y_train_clean
        if self.clean_indices is not None:
            return self.clean_indices, self.clean_labels
        return None

    def transition_from_clean(self) -> torch.Tensor | None:
        """The true ``T`` counted from the trusted labels and their ``y_train``, or ``None`` without any.

        ``T[i, j] = #{clean = i, y_train = j} / #{clean = i}`` over the trusted examples
        (:func:`pyrobust.noise.from_clean_subset`; Patrini et al. 2017, sec. 5.3): a float64 ``C x C`` CPU
        tensor. Raises ``ValueError`` when a class has no trusted example (its row is unknown).
        """
        trusted = self.trusted_labels()
        if trusted is None:
            return None
        from pyrobust.noise import from_clean_subset

        indices, clean = trusted
        return from_clean_subset(clean, self.y_train[indices], self.num_classes)


def _check_labels(name: str, what: str, y: torch.Tensor, length: int, bound: int) -> None:
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() != 1 or len(y) != length:
        got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name}: {what} must be an int64 tensor of length {length}, got {got}")
    if len(y) and (y.min() < 0 or y.max() >= bound):
        raise ValueError(f"{name}: {what} holds values outside [0, {bound})")


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

