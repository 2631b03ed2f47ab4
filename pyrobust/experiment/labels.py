"""Noisy training labels: made by :func:`corrupt_labels` (``pyrobust corrupt``), read by the trainer.

Step 1 of the paper's protocol (section 5.1): the training labels are corrupted once per seed,
``noisy_i ~ T[y_i, :]``, and every method of that seed trains on the same noisy labels. The file format,
:class:`NoisyLabels`, is an ``.npz`` of plain arrays (no pickles), written atomically.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyrobust._checks import check_transition_matrix
from pyrobust._io import atomic_write
from pyrobust.catalog import HUMAN_NOISE, NOISE_KINDS

__all__ = ["NoisyLabels", "corrupt_labels"]

_ARRAYS = {"labels", "T", "dataset", "noise", "N", "seed"}
_ZIP_MAGIC = b"PK\x03\x04"  # np.savez writes a zip archive
_NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class NoisyLabels:
    """Noisy training labels with the matrix that produced them: ``labels[i] ~ T[y_train[i], :]`` (sec. 5.1).

    Attributes:
        dataset, noise, N, seed: the data set, noise kind, noise level (a probability) and seed used.
        labels: int64 numpy array (n_train,), classes in ``[0, C)``, in the training set's order.
        T: float64 numpy array (C, C), row-stochastic, ``T[i, j] = p(noisy = j | clean = i)``.
    """

    dataset: str
    noise: str
    N: float
    seed: int
    labels: np.ndarray = field(repr=False)
    T: np.ndarray = field(repr=False)

    def save(self, path: str | os.PathLike) -> None:
        """Write an ``.npz`` to ``path`` atomically (the final name never holds a partial file).

        Raises:
            OSError: the folder cannot be written; ``path`` is then left as it was.
        """
        buf = io.BytesIO()
        np.savez(
            buf,
            labels=np.asarray(self.labels, dtype=np.int64),
            T=np.asarray(self.T, dtype=np.float64),
            dataset=np.array(self.dataset),
            noise=np.array(self.noise),
            N=np.array(float(self.N)),
            seed=np.array(int(self.seed)),
        )
        atomic_write(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> NoisyLabels:
        """Read a file written by :meth:`save`.

        Every message starts with ``"<path>: "``; whatever the bytes of the file, only these are raised.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: any other content (a directory, not an ``.npz`` archive, truncated or damaged,
                arrays missing or of the wrong kind, labels not 1-D int64 or out of ``[0, C)``, ``T`` not a
                row-stochastic square matrix).
        """
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"{path}: is a directory, not a noisy-labels .npz written by `pyrobust corrupt`")
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file (write it with `pyrobust corrupt`)")
        what = "not a noisy-labels file written by `pyrobust corrupt`"
        try:
            with open(path, "rb") as file:
                magic = file.read(len(_ZIP_MAGIC))
            if magic != _ZIP_MAGIC:
                kind = "a .npy array" if magic == _NPY_MAGIC[: len(magic)] and magic else "not an .npz archive"
                raise ValueError(f"{kind}; expected the .npz archive")
            with np.load(path, allow_pickle=False) as f:
                missing = _ARRAYS - set(f.files)
                if missing:
                    raise ValueError(f"missing arrays {sorted(missing)}")
                labels, T = f["labels"], f["T"]
                meta = dict(dataset=str(f["dataset"]), noise=str(f["noise"]), N=float(f["N"]), seed=int(f["seed"]))
        # A damaged archive raises any of these from zipfile, zlib or numpy's reader; all mean "bad file".
        # TypeError: a scalar entry (N, seed) that is an array or a string.
        except (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile, zlib.error) as err:
            problem = str(err).strip() or type(err).__name__
            if isinstance(err, zipfile.BadZipFile):
                problem = f"damaged or truncated archive ({problem})"
            raise ValueError(f"{path}: {what}: {problem}") from None
        if labels.ndim != 1 or labels.dtype != np.int64:
            raise ValueError(f"{path}: labels must be a 1-D int64 array, got {labels.dtype} {labels.shape}")
        try:
            check_transition_matrix(torch.from_numpy(np.asarray(T, dtype=np.float64)), name="T")
        except (TypeError, ValueError) as err:  # T of strings, or not a transition matrix
            raise ValueError(f"{path}: {err}") from None
        if labels.size and (labels.min() < 0 or labels.max() >= T.shape[0]):
            raise ValueError(f"{path}: labels must lie in [0, {T.shape[0]})")
        return cls(labels=labels, T=np.asarray(T, dtype=np.float64), **meta)


def _human_labels(
    data: Any, setting: str, N: float, seed: int, data_root: str | os.PathLike | None
) -> NoisyLabels:
    """The human labels of a CIFAR-N setting and their empirical ``T``, checked against ``data``."""
    from pyrobust.data.cifar_n import human_noise_from_labels, load_cifar_n

    dataset = HUMAN_NOISE[setting][0]
    if data.name != dataset:
        others = [kind for kind, (d, *_) in HUMAN_NOISE.items() if d == data.name]
        raise ValueError(f"noise {setting!r} is a human label set of {dataset}, not of {data.name} "
                         f"(whose human label sets are: {', '.join(others) or 'none'})")
    if float(N) != 0.0:
        raise ValueError(f"noise {setting!r} takes the human labels as they are: N must be 0 (a placeholder), "
                         f"got N = {N}")
    # one label per training image of `data` (50,000 for CIFAR itself), checked again by apply()
    human = human_noise_from_labels(load_cifar_n(dataset, data_root, num_examples=len(data.y_train)), setting)
    labels = human.apply(data).y_train.cpu().numpy().astype(np.int64, copy=False)
    return NoisyLabels(dataset=data.name, noise=setting, N=0.0, seed=int(seed), labels=labels,
                       T=human.T.numpy().astype(np.float64, copy=False))


def _custom(name: str) -> bool:
    from pyrobust.registry import DATASETS

    return name in DATASETS and DATASETS.get(name).custom


def corrupt_labels(
    data: Any, noise: str, N: float, seed: int, *, data_root: str | os.PathLike | None = None
) -> NoisyLabels:
    """Corrupt ``data.y_train`` with the paper's ``T`` for ``data.name``: ``noisy_i ~ T[y_i, :]``, seeded.

    A human-noise setting of CIFAR-N (:data:`pyrobust.catalog.HUMAN_NOISE`: ``human-aggregate``,
    ``human-random1``-``3``, ``human-worst`` of CIFAR-10, ``human-noisy`` of CIFAR-100) injects nothing: its
    labels are the human ones, read from the CIFAR-N file in the data root, and its ``T`` the empirical one
    of the (clean, human) pairs of all training images (:func:`pyrobust.data.cifar_n.human_noise`); ``N`` is
    then 0, a placeholder, and ``seed`` changes nothing but the record.

    Args:
        data: a :class:`pyrobust.data.Dataset` (``name``, ``y_train`` int64 (n,), ``num_classes``; for
            CIFAR-100 ``coarse_train``, whose superclasses the asymmetric noise keeps).
        noise: ``"none"``, ``"symmetric"`` or ``"asymmetric"`` (section 5.1), or a human-noise setting.
        N: the noise level, a probability (0 for a human-noise setting).
        seed: the corruption's seed; the same seed gives the same labels.
        data_root: where the CIFAR-N label file of a human-noise setting is looked up
            (:func:`pyrobust.data.cifar_n.cifar_n_path`; default ``$PYROBUST_DATA``, else ``./data``).

    Returns:
        The noisy labels (int64 (n,)) and ``T`` (float64 (C, C)).

    Raises:
        ValueError: an unknown noise kind, an ``N`` outside [0, 1], no such noise for this data set (a
            human-noise setting of another data set, or with ``N != 0``), or a CIFAR-N file that does not
            match ``data`` (``DataFormatError``: other clean labels, another length).
        FileNotFoundError: the CIFAR-N file is absent (``DatasetNotAvailable``; the message says where to
            put it, or to run ``pyrobust fetch cifar10n``).
    """
    from pyrobust.noise import corrupt, transition_matrix_for

    if noise not in NOISE_KINDS:
        raise ValueError(f"unknown noise {noise!r}; known: {', '.join(NOISE_KINDS)}")
    if noise in HUMAN_NOISE:
        return _human_labels(data, noise, N, seed, data_root)
    coarse_labels = None
    if data.coarse_train is not None:  # CIFAR-100: the fine -> coarse table, read off the data set itself
        coarse_labels = torch.zeros(data.num_classes, dtype=torch.int64)
        coarse_labels.scatter_(0, torch.as_tensor(data.y_train), torch.as_tensor(data.coarse_train))
    T = transition_matrix_for(data.name, noise, N, coarse_labels=coarse_labels)
    T = torch.as_tensor(np.asarray(T), dtype=torch.float64)
    check_transition_matrix(T, data.num_classes)
    noisy = corrupt(data.y_train, T, seed)
    # A data set whose labels are noisy already (one declared in a config, with trusted labels): the true T
    # is that of its natural noise, counted from the (clean, given) pairs, times the injected one.
    natural = data.transition_from_clean() if _custom(data.name) else None
    if natural is not None:
        T = natural @ T
    labels = torch.as_tensor(noisy).cpu().numpy().astype(np.int64, copy=False)
    return NoisyLabels(dataset=data.name, noise=noise, N=float(N), seed=int(seed), labels=labels, T=T.numpy())
