"""Image folders of your own (torchvision's ``ImageFolder`` layout, plus an optional noisy-label CSV).

:func:`image_folder` indexes the files without decoding them (lazy ``torch.utils.data.Dataset`` objects,
for folders too large to hold in memory); :func:`decode_folder` decodes them all into arrays for
:func:`pyrobust.data.arrays.load_arrays`. The layout is described in :mod:`pyrobust.data.arrays`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pyrobust.data._common import DataFormatError, DatasetNotAvailable
from pyrobust.data.csv_table import csv_rows
from pyrobust.data.images import IMAGE_EXTENSIONS, ImageFiles, open_image, to_tensor

#: The noisy-label CSV of an image folder, looked up in the folder when ``labels_csv`` is not given.
NOISY_LABELS_CSV = "noisy_labels.csv"

#: Largest decoded image folder :func:`pyrobust.data.arrays.load_arrays` builds in memory (float32 bytes);
#: beyond it, use :func:`image_folder` (lazy decoding).
MAX_IMAGE_BYTES = 8 << 30


@dataclass(frozen=True)
class ImageFolderData:
    """An image folder of your own, indexed but not decoded (:func:`image_folder`).

    Attributes:
        root: the folder.
        classes: the class folder names; class ``i`` is ``classes[i]``.
        train, test: the images as lazily decoded datasets (``x`` float32 ``C x H x W`` in [0, 1], or the
            output of ``transform``; ``y`` int64): ``train`` labelled with the noisy labels of the CSV when
            there is one, else with their folders.
        y_train_clean: int64 ``N_train``, the folder label of each training image (-1 where it lies
            directly in ``train/``), or None without a noisy-label CSV (the folder labels are ``train``'s).
        sources: what each label array comes from, for messages.
    """

    root: Path
    classes: tuple[str, ...]
    train: ImageFiles
    test: ImageFiles
    y_train_clean: np.ndarray | None
    sources: dict[str, str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def image_folder(
    path: str | os.PathLike[str],
    *,
    labels_csv: str | os.PathLike[str] | None = None,
    transform: Any = None,
    num_classes: int | None = None,
) -> ImageFolderData:
    """Index an image folder of your own (layout in the module docstring) without decoding any image.

    Args:
        path: the folder holding ``train/`` and ``test/``.
        labels_csv: the noisy-label CSV (default ``<path>/noisy_labels.csv`` if it exists).
        transform: given to both :class:`~pyrobust.data.images.ImageFiles` (e.g.
            :class:`~pyrobust.data.images.ImageTransform`); default: float32 ``C x H x W`` in [0, 1].
        num_classes: ``C`` if more classes exist than have folders; default: the number of class folders.

    Raises:
        DatasetNotAvailable: ``path``, ``train/`` or ``test/`` is missing.
        DataFormatError: no class folder, the CSV does not parse, names an image that is not there, labels
            a class that does not exist, misses a training image or lists one twice (message names it).
    """
    root = Path(path)
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DatasetNotAvailable(f"{root / split}: folder missing (an image folder holds train/ and test/, "
                                      "each with one sub-folder of images per class)")
    listing = {split: _list_images(root / split) for split in ("train", "test")}
    classes = tuple(sorted({c for split in listing.values() for c, _ in split if c is not None}))
    if not classes:
        raise DataFormatError(f"{root}: no class folder in train/ or test/")
    index = {c: i for i, c in enumerate(classes)}
    C = len(classes) if num_classes is None else int(num_classes)
    if C < len(classes):
        raise DataFormatError(f"{root}: {len(classes)} class folders, more than num_classes={C}")
    if any(c is None for c, _ in listing["test"]):
        raise DataFormatError(f"{root / 'test'}: every test image must lie in its class folder")
    test = ImageFiles(root / "test", [f for _, f in listing["test"]], [index[c] for c, _ in listing["test"]],
                      transform, source=str(root / "test"))
    folder_labels = np.array([index[c] if c is not None else -1 for c, _ in listing["train"]], dtype=np.int64)
    files = [f for _, f in listing["train"]]
    sources = {"y_test": str(root / "test"), "x_test": str(root / "test"), "x_train": str(root / "train")}
    csv_path = Path(labels_csv) if labels_csv is not None else root / NOISY_LABELS_CSV
    if labels_csv is None and not csv_path.is_file():
        if (folder_labels < 0).any():
            loose = files[int(np.flatnonzero(folder_labels < 0)[0])]
            raise DataFormatError(f"{root / 'train' / loose}: a training image outside any class folder needs a "
                                  f"label in {csv_path}, which does not exist")
        train = ImageFiles(root / "train", files, folder_labels, transform, source=str(root / "train"))
        return ImageFolderData(root, classes, train, test, None, {**sources, "y_train": str(root / "train")})
    noisy = _read_labels_csv(csv_path, index, C)
    position = {f: i for i, f in enumerate(files)}
    unknown = [f for f in noisy if f not in position]
    if unknown:
        raise DataFormatError(f"{csv_path}: file {unknown[0]!r} is not an image in {root / 'train'}")
    unlabelled = [f for f in files if f not in noisy]
    if unlabelled:
        raise DataFormatError(f"{csv_path}: no label for the training image {unlabelled[0]!r} "
                              f"({len(unlabelled)} of {len(files)} missing)")
    train = ImageFiles(root / "train", files, [noisy[f] for f in files], transform, source=str(csv_path))
    sources.update(y_train=str(csv_path), y_train_clean=str(root / "train"), clean_indices=str(root / "train"),
                   clean_labels=str(root / "train"))
    return ImageFolderData(root, classes, train, test, folder_labels, sources)


def _list_images(folder: Path) -> list[tuple[str | None, str]]:
    """``(class folder or None, path relative to folder)`` of every image, sorted (one class level)."""
    out = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            out += [(entry.name, f"{entry.name}/{f.name}") for f in sorted(entry.iterdir())
                    if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
        elif entry.suffix.lower() in IMAGE_EXTENSIONS:
            out.append((None, entry.name))
    return out


def _read_labels_csv(path: Path, index: Mapping[str, int], C: int) -> dict[str, int]:
    if not path.is_file():
        raise DatasetNotAvailable(f"{path}: noisy-label CSV missing")
    header, rows = csv_rows(path)
    if "file" not in header or "label" not in header:
        raise DataFormatError(f"{path}: the header must name the columns 'file' and 'label', got {header}")
    file_col, label_col = header.index("file"), header.index("label")
    labels: dict[str, int] = {}
    for line, row in rows:
        file, text = row[file_col].strip().replace("\\", "/"), row[label_col].strip()
        if text in index:
            label = index[text]
        else:
            try:
                label = int(text)
            except ValueError:
                raise DataFormatError(f"{path}, line {line}: label {text!r} is neither a class folder name "
                                      f"({', '.join(index)}) nor a class index") from None
            if not 0 <= label < C:
                raise DataFormatError(f"{path}, line {line}: label {label} outside [0, {C})")
        if file in labels:
            raise DataFormatError(f"{path}, line {line}: {file!r} is listed twice")
        labels[file] = label
    return labels


def decode_folder(folder: ImageFolderData, image_size: int | tuple[int, int] | None) -> dict[str, np.ndarray]:
    """Decode every image of ``folder`` into float32 ``N x C x H x W`` arrays (the labels alongside)."""
    from PIL import Image

    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    if len(folder.train) == 0:
        raise DataFormatError(f"{folder.root / 'train'}: no image")
    first = open_image(folder.train.path(0), mode=None)
    mode = "L" if first.mode in ("L", "1") else "RGB"
    height, width = size if size is not None else (first.height, first.width)
    channels = 1 if mode == "L" else 3
    total = len(folder.train) + len(folder.test)
    if total * channels * height * width * 4 > MAX_IMAGE_BYTES:
        raise DataFormatError(f"{folder.root}: {total} images of {channels} x {height} x {width} do not fit in "
                              f"{MAX_IMAGE_BYTES >> 30} GiB: use pyrobust.data.arrays.image_folder (lazy decoding)")
    arrays = {}
    for split, files in (("train", folder.train), ("test", folder.test)):
        x = np.empty((len(files), channels, height, width), dtype=np.float32)
        for i in range(len(files)):
            image = open_image(files.path(i), mode=mode)
            if size is not None and image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            if image.size != (width, height):
                raise DataFormatError(f"{files.path(i)}: {image.width} x {image.height} pixels, but "
                                      f"{folder.train.path(0)} has {width} x {height}: pass image_size= to "
                                      "resize them all")
            x[i] = to_tensor(image).numpy()
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, files.labels.copy()
    if folder.y_train_clean is not None:
        known = np.flatnonzero(folder.y_train_clean >= 0)
        if known.size == len(folder.y_train_clean):
            arrays["y_train_clean"] = folder.y_train_clean
        elif known.size:
            arrays["clean_indices"], arrays["clean_labels"] = known, folder.y_train_clean[known]
    return arrays


__all__ = ["ImageFolderData", "MAX_IMAGE_BYTES", "NOISY_LABELS_CSV", "decode_folder", "image_folder"]
