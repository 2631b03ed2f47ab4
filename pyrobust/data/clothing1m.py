"""Clothing1M: 1M clothing images with noisy labels from the web, and 72k with clean labels.

Source: T. Xiao, T. Xia, Y. Yang, C. Huang, X. Wang, "Learning from Massive Noisy Labeled Data for Image
Classification", CVPR 2015 (distributed by its authors on request: https://github.com/Cysu/noisy_label;
no public download, so no pinned files). Patrini et al. 2017, section 5.3 and Table 3, train an
ImageNet-pretrained ResNet-50 on it.

The published layout, in one folder (``<data root>/clothing1m/``, or any folder given as ``path``)::

    category_names_eng.txt      14 class names, one a line (T-Shirt, Shirt, ..., Underwear): class i is line i
    noisy_label_kv.txt          "<image key> <class>" per line: the noisy (web) labels
    clean_label_kv.txt          "<image key> <class>" per line: the clean (human-checked) labels
    noisy_train_key_list.txt    the 1M noisy training images, one key a line
    clean_train_key_list.txt    the "50k" clean training images (47,570)
    clean_val_key_list.txt      the "14k" clean validation images (14,313)
    clean_test_key_list.txt     the "10k" clean test images (10,526)
    images/                     the JPEGs; a key is the path relative to the folder (images/0/00/x.jpg)

:func:`load_clothing1m` parses the lists (checked; errors name the file and line) and returns each split as
an :class:`~pyrobust.data.images.ImageFiles`: a standard ``torch.utils.data.Dataset`` decoding its images
lazily, for a ``DataLoader`` with worker processes. :func:`transition_from_clean` gives the paper's ``T``:
"instead of estimating the matrix T by (12)-(13), we exploit the curated labels of 50k and their noisy
versions in 1M" (sec. 5.3): counted over the clean training images that also carry a noisy label.

Transforms (sec. 5.3): the network is an ImageNet-pretrained ResNet-50, so images are normalised with
ImageNet's mean and std at 224 x 224. "When we train with 50k we use ... data augmentation, while with 1M
we use only weight decay", the augmentation being "same as in Section 5.1 for CIFAR-10", i.e. random crops
and horizontal flips: here resize the shorter side to 256, random 224 x 224 crop, random flip
(:meth:`ImageTransform.train`) for ``clean_train``; resize to 256 and the centre 224 x 224 crop
(:meth:`ImageTransform.eval`) for ``noisy_train`` (no augmentation, unless ``augment_noisy``),
``clean_val`` and ``clean_test``. The paper gives no crop sizes: 256/224 is the standard protocol of the
ImageNet ResNets (He et al. 2016), which the pretrained network expects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from pyrobust.data._common import DataFormatError, DatasetNotAvailable, data_root
from pyrobust.data.images import ImageFiles, ImageTransform

#: Clothing1M's number of classes.
NUM_CLASSES = 14

#: The list files of the published layout.
LABEL_FILES = {"noisy": "noisy_label_kv.txt", "clean": "clean_label_kv.txt"}
KEY_LISTS = {
    "noisy_train": "noisy_train_key_list.txt",
    "clean_train": "clean_train_key_list.txt",
    "clean_val": "clean_val_key_list.txt",
    "clean_test": "clean_test_key_list.txt",
}
CLASS_NAMES_FILE = "category_names_eng.txt"

Split = Literal["noisy_train", "clean_train", "clean_val", "clean_test"]


@dataclass(frozen=True, eq=False)
class Clothing1M:
    """Clothing1M's splits, indexed (not decoded): each a ``torch.utils.data.Dataset`` of ``(x, y)``.

    Attributes:
        root: the data set's folder.
        class_names: the 14 English class names (``category_names_eng.txt``).
        noisy_train: the 1M images with their noisy labels.
        clean_train, clean_val, clean_test: the 50k / 14k / 10k images with their clean labels.
        overlap_clean, overlap_noisy: int64 ``k``: clean and noisy labels of the ``k`` images listed in both
            ``clean_label_kv.txt`` and ``noisy_label_kv.txt``, in ``clean_label_kv.txt``'s order.
        overlap_split: ``k`` strings: the clean split each of those images belongs to (``clean_train``,
            ``clean_val``, ``clean_test``, or ``""`` for none).

    ``x`` is the transform's output (by default float32 ``3 x 224 x 224``, ImageNet-normalised); ``y`` a
    0-d int64 tensor in [0, 14).
    """

    root: Path
    class_names: tuple[str, ...]
    noisy_train: ImageFiles
    clean_train: ImageFiles
    clean_val: ImageFiles
    clean_test: ImageFiles
    overlap_clean: np.ndarray
    overlap_noisy: np.ndarray
    overlap_split: np.ndarray

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    def split(self, name: Split) -> ImageFiles:
        """The split ``name`` (``noisy_train``, ``clean_train``, ``clean_val``, ``clean_test``)."""
        if name not in KEY_LISTS:
            raise ValueError(f"unknown Clothing1M split {name!r}; known: {', '.join(KEY_LISTS)}")
        return getattr(self, name)

    def transition_from_clean(self, subset: Literal["train", "all"] = "train") -> torch.Tensor:
        """:func:`transition_from_clean` of this data set."""
        return transition_from_clean(self, subset)


def clothing1m_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Where Clothing1M is looked up: ``<root>/clothing1m`` if it exists, else ``<root>/Clothing1M``,
    else ``root`` itself when it holds ``noisy_label_kv.txt``; ``<root>/clothing1m`` otherwise."""
    base = data_root(root)
    for candidate in (base / "clothing1m", base / "Clothing1M"):
        if candidate.is_dir():
            return candidate
    return base if (base / LABEL_FILES["noisy"]).is_file() else base / "clothing1m"


def load_clothing1m(
    root: str | os.PathLike[str] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    train_transform: Any = None,
    eval_transform: Any = None,
    augment_noisy: bool = False,
    check_images: bool = False,
) -> Clothing1M:
    """Index Clothing1M (layout in the module docstring) without decoding any image.

    Args:
        root: the data root (``$PYROBUST_DATA``, ``./data``): the data set is in ``<root>/clothing1m/``.
        path: the data set's folder itself (overrides ``root``).
        train_transform: for ``clean_train`` (and ``noisy_train`` if ``augment_noisy``); default
            ``ImageTransform.train()`` (resize 256, random crop 224, random flip, ImageNet normalisation).
        eval_transform: for ``noisy_train`` (unless ``augment_noisy``), ``clean_val``, ``clean_test``;
            default ``ImageTransform.eval()`` (resize 256, centre crop 224, ImageNet normalisation).
        augment_noisy: augment the 1M noisy images too (the paper does not, sec. 5.3).
        check_images: check now that every listed image exists (one ``stat`` per image, 1.07M in all:
            slow on a network file system); otherwise a missing image fails when it is loaded.

    Returns:
        a :class:`Clothing1M`.

    Raises:
        DatasetNotAvailable: the folder, a list file or (with ``check_images``) an image is missing (the
            message names it).
        DataFormatError: a line of a list file does not parse, a label is outside [0, 14), a key is
            repeated, absolute or leaves the folder, a listed key has no label, or
            ``category_names_eng.txt`` has not 14 names (the message names the file and line).
    """
    folder = Path(path) if path is not None else clothing1m_dir(root)
    if not folder.is_dir():
        files = ", ".join([*LABEL_FILES.values(), *KEY_LISTS.values(), CLASS_NAMES_FILE])
        raise DatasetNotAvailable(
            f"clothing1m: {folder} does not exist. Clothing1M is distributed by its authors on request "
            f"(https://github.com/Cysu/noisy_label); put its list files ({files}) and images/ in {folder}/"
        )
    names = _read_class_names(folder / CLASS_NAMES_FILE)
    noisy = _read_kv(folder / LABEL_FILES["noisy"])
    clean = _read_kv(folder / LABEL_FILES["clean"])
    train_transform = ImageTransform.train() if train_transform is None else train_transform
    eval_transform = ImageTransform.eval() if eval_transform is None else eval_transform
    transforms = {"noisy_train": train_transform if augment_noisy else eval_transform,
                  "clean_train": train_transform, "clean_val": eval_transform, "clean_test": eval_transform}
    splits: dict[str, ImageFiles] = {}
    membership: dict[str, str] = {}
    for split, list_name in KEY_LISTS.items():
        list_path = folder / list_name
        keys = _read_keys(list_path)
        labels_name = LABEL_FILES["noisy" if split == "noisy_train" else "clean"]
        table = noisy if split == "noisy_train" else clean
        try:
            labels = [table[k] for k in keys]
        except KeyError as err:
            raise DataFormatError(f"{list_path}: key {err.args[0]!r} has no label in {folder / labels_name}") from None
        splits[split] = ImageFiles(folder, keys, labels, transforms[split], source=str(list_path))
        if split != "noisy_train":
            membership.update(dict.fromkeys(keys, split))
        if check_images and (missing := splits[split].missing()):
            raise DatasetNotAvailable(f"{missing[0]}: image missing (listed in {list_path}; {len(missing)} of "
                                      f"{len(keys)} missing)")
    both = [k for k in clean if k in noisy]
    return Clothing1M(
        folder, names, **splits,
        overlap_clean=np.array([clean[k] for k in both], dtype=np.int64),
        overlap_noisy=np.array([noisy[k] for k in both], dtype=np.int64),
        overlap_split=np.array([membership.get(k, "") for k in both], dtype=str),
    )


def transition_from_clean(data: Clothing1M, subset: Literal["train", "all"] = "train") -> torch.Tensor:
    """``T`` counted from the Clothing1M images that carry both a clean and a noisy label (paper, sec. 5.3).

    ``T[i, j] = #{clean = i, noisy = j} / #{clean = i}`` over the images listed in both
    ``clean_label_kv.txt`` and ``noisy_label_kv.txt`` (:func:`pyrobust.noise.from_clean_subset`):
    ``subset="train"`` (default) keeps those of the clean training split (the paper's "curated labels of
    50k and their noisy versions in 1M"), so that no validation or test label informs ``T``; ``"all"`` keeps
    every such image.

    Returns:
        a float64 ``14 x 14`` CPU tensor, rows summing to 1.

    Raises:
        ValueError: an unknown ``subset``, or a class without any such image (its row cannot be counted).
    """
    from pyrobust.noise import from_clean_subset

    if subset == "train":
        keep = data.overlap_split == "clean_train"
    elif subset == "all":
        keep = np.ones(len(data.overlap_clean), dtype=bool)
    else:
        raise ValueError(f"subset must be 'train' or 'all', got {subset!r}")
    return from_clean_subset(data.overlap_clean[keep], data.overlap_noisy[keep], NUM_CLASSES)


# --- parsing ------------------------------------------------------------------------------------------


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetNotAvailable(f"{path}: Clothing1M list file missing")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(f"{path}: unreadable ({type(err).__name__}: {err})") from err


def _check_key(key: str, path: Path, line: int) -> str:
    # a relative path below the folder: not absolute, no drive, no '..' component (string tests: 2M keys)
    if key.startswith(("/", "\\")) or ":" in key or ".." in key and ".." in key.replace("\\", "/").split("/"):
        raise DataFormatError(f"{path}, line {line}: key {key!r} is not a path inside the data set's folder")
    return key


def _read_kv(path: Path) -> dict[str, int]:
    """``{key: label}`` of a ``<key> <label>`` file; labels in [0, 14), keys unique."""
    table: dict[str, int] = {}
    for line, text in enumerate(_lines(path), start=1):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DataFormatError(f"{path}, line {line}: expected '<image key> <label>', got {text!r}")
        key, value = fields
        try:
            label = int(value)
        except ValueError:
            raise DataFormatError(f"{path}, line {line}: label {value!r} is not an integer") from None
        if not 0 <= label < NUM_CLASSES:
            raise DataFormatError(f"{path}, line {line}: label {label} outside [0, {NUM_CLASSES})")
        if key in table:
            raise DataFormatError(f"{path}, line {line}: key {key!r} is listed twice")
        table[_check_key(key, path, line)] = label
    return table


def _read_keys(path: Path) -> list[str]:
    keys = []
    for line, text in enumerate(_lines(path), start=1):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 1:
            raise DataFormatError(f"{path}, line {line}: expected one image key, got {text!r}")
        keys.append(fields[0])  # checked as a key of a label file, or refused for having no label
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        twice = next(k for k in keys if k in seen or seen.add(k))
        raise DataFormatError(f"{path}: key {twice!r} is listed twice")
    return keys


def _read_class_names(path: Path) -> tuple[str, ...]:
    names = tuple(t.strip() for t in _lines(path) if t.strip())
    if len(names) != NUM_CLASSES:
        raise DataFormatError(f"{path}: expected {NUM_CLASSES} class names, one a line, got {len(names)}")
    return names


__all__ = [
    "CLASS_NAMES_FILE",
    "Clothing1M",
    "KEY_LISTS",
    "LABEL_FILES",
    "NUM_CLASSES",
    "clothing1m_dir",
    "load_clothing1m",
    "transition_from_clean",
]
