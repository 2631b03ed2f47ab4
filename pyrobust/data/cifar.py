"""CIFAR-10 and CIFAR-100 from the official "python version" pickle batches.

Each batch is a pickled dict: ``data`` a uint8 ``N x 3072`` array (1024 red, 1024 green, 1024 blue
values, each a row-major 32 x 32 plane) and the labels as a list of ``N`` ints (``labels`` for CIFAR-10;
``fine_labels`` and ``coarse_labels`` for CIFAR-100). The batches are unpickled with a restricted
unpickler that admits NumPy arrays and builtin containers only.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pyrobust.data._common import DataFormatError, Dataset, DatasetNotAvailable, data_root, safe_unpickle
from pyrobust.data.download import placement_hint, remotes


@dataclass(frozen=True)
class _Layout:
    folder: str  # the folder inside the tarball
    train: tuple[str, ...]
    test: tuple[str, ...]
    labels: tuple[tuple[str, int], ...]  # (key, number of classes); the first key gives y


_LAYOUTS = {
    "cifar10": _Layout("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                       (("labels", 10),)),
    "cifar100": _Layout("cifar-100-python", ("train",), ("test",), (("fine_labels", 100), ("coarse_labels", 20))),
}


def load_cifar(name: str, root: str | os.PathLike[str] | None = None) -> Dataset:
    """CIFAR-10 (``name="cifar10"``) or CIFAR-100 (``"cifar100"``): 50,000 train and 10,000 test images.

    Looked up, in this order, as the extracted folder (``cifar-10-batches-py/`` or ``cifar-100-python/``) in
    ``<root>/<name>/`` or ``<root>/`` (torchvision's layout), then as the tarball
    (``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``) in the same two places (read in place, never
    extracted).

    Per-pixel mean subtraction: ``x = pixels / 255 - mean_train``, where ``mean_train`` (``3 x 32 x 32``)
    is the mean of the training images; float32 ``N x 3 x 32 x 32``. ``y`` int64 (10 or 100 classes);
    CIFAR-100 also returns its 20 super-classes in ``coarse_train`` / ``coarse_test``.

    Raises:
        ValueError: ``name`` is neither ``"cifar10"`` nor ``"cifar100"``.
        DatasetNotAvailable: none of the places holds the data (the message says what to put where).
        DataFormatError: a file is there but corrupted or in another format (the message names it).
    """
    if name not in _LAYOUTS:
        raise ValueError(f"load_cifar loads 'cifar10' or 'cifar100', got {name!r}")
    layout = _LAYOUTS[name]
    root = data_root(root)
    archive_name = remotes(name)[0].filename
    candidates = [root / name / layout.folder, root / layout.folder, root / name / archive_name, root / archive_name]
    source = next((p for p in candidates if p.exists()), None)
    if source is None:
        raise DatasetNotAvailable(f"{name}: none of {', '.join(map(str, candidates))} exists.\n"
                                  f"{placement_hint(name, root)}")
    files = _read_batches(source, layout)
    train = [_parse_batch(files[b], f"{source}/{b}", layout) for b in layout.train]
    test = [_parse_batch(files[b], f"{source}/{b}", layout) for b in layout.test]

    x_train_u8 = np.concatenate([data for data, _ in train])
    mean = torch.from_numpy(x_train_u8.mean(axis=0, dtype=np.float64) / 255.0).to(torch.float32)

    def images(u8: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(u8).to(torch.float32).div_(255.0).sub_(mean).view(-1, 3, 32, 32)

    def labels(batches: list, k: int) -> torch.Tensor:
        return torch.from_numpy(np.concatenate([ys[k] for _, ys in batches]))

    x_train = images(x_train_u8)
    del x_train_u8
    x_test = images(np.concatenate([data for data, _ in test]))
    coarse = len(layout.labels) > 1
    return Dataset(
        name, x_train, labels(train, 0), x_test, labels(test, 0), num_classes=layout.labels[0][1],
        coarse_train=labels(train, 1) if coarse else None, coarse_test=labels(test, 1) if coarse else None,
    )


def _read_batches(source: Path, layout: _Layout) -> dict[str, bytes]:
    """The raw bytes of every batch file, from the extracted folder or straight from the tarball."""
    wanted = layout.train + layout.test
    if source.is_dir():
        missing = [b for b in wanted if not (source / b).is_file()]
        if missing:
            raise DataFormatError(f"{source}: incomplete, missing {', '.join(missing)}")
        return {b: (source / b).read_bytes() for b in wanted}
    members = {f"{layout.folder}/{b}": b for b in wanted}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(source, "r:gz") as tar:
            for member in tar:  # one pass over the stream: a gzip'd tarball cannot seek cheaply
                if member.name in members and member.isfile():
                    found[members[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataFormatError(f"{source}: not a readable .tar.gz ({type(err).__name__}: {err})") from err
    missing = [m for m, b in members.items() if b not in found]
    if missing:
        raise DataFormatError(f"{source}: not the official archive, missing {', '.join(missing)}")
    return found


def _parse_batch(raw: bytes, what: str, layout: _Layout) -> tuple[np.ndarray, list[np.ndarray]]:
    """Validate one unpickled batch: ``data`` uint8 ``N x 3072``, each label list of length ``N`` in range."""
    batch = safe_unpickle(raw, what)
    if not isinstance(batch, dict):
        raise DataFormatError(f"{what}: expected a pickled dict, got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFormatError(f"{what}: 'data' must be a uint8 N x 3072 array, got {got}")
    labels = []
    for key, num_classes in layout.labels:
        try:
            y = np.asarray(batch[key])
        except (KeyError, ValueError) as err:
            raise DataFormatError(f"{what}: no valid {key!r} list ({err})") from err
        if y.shape != (len(data),) or y.dtype.kind not in "iu":
            raise DataFormatError(f"{what}: {key!r} must hold {len(data)} integers, got {y.dtype} {y.shape}")
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise DataFormatError(f"{what}: {key!r} has values outside [0, {num_classes})")
        labels.append(y.astype(np.int64))
    return data, labels


__all__ = ["load_cifar", "load_cifar10", "load_cifar100"]


def load_cifar10(root: str | os.PathLike[str] | None = None) -> Dataset:
    """CIFAR-10: :func:`load_cifar` ``("cifar10", root)``."""
    return load_cifar("cifar10", root)


def load_cifar100(root: str | os.PathLike[str] | None = None) -> Dataset:
    """CIFAR-100 with its 20 superclasses: :func:`load_cifar` ``("cifar100", root)``."""
    return load_cifar("cifar100", root)
