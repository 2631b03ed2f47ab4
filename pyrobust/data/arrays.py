"""Your own data: arrays (``.npz``, a folder of ``.npy``), a CSV of features, or an image folder.

:func:`load_arrays` reads any of the layouts below into a :class:`pyrobust.data.Dataset`;
:func:`register_arrays_dataset` registers such a file under a name, so that ``pyrobust.data.load(name)``
(and everything that takes a registered data set) works with it.

Layouts (``path`` is a file or a folder):

``data.npz`` (``np.savez``) or a folder of ``.npy`` files (``x_train.npy``, ``y_train.npy``, ...)
    ``x_train`` (``n x d``, or image-shaped ``n x H x W``, ``n x H x W x C`` or ``n x C x H x W``),
    ``y_train`` (``n``), ``x_test``, ``y_test``; optionally the trusted labels of the training set, either
    ``y_train_clean`` (``n``: every example's clean label) or ``clean_indices`` + ``clean_labels``
    (``k`` each: a trusted subset). No other array names are accepted (a misspelt one is an error).

``data.csv``: one CSV with a header row
    a ``split`` column (``train`` or ``test``), a ``label`` column (the class index used for training: the
    noisy label), optionally a ``clean_label`` column (the trusted label; empty cells where unknown; empty
    on every ``test`` row), and every other column a numeric feature: ``x`` is ``n x d`` float32 in the
    column order of the file, taken as written (not rescaled)::

        split,label,clean_label,f0,f1,f2
        train,3,3,0.12,0.5,1.0
        train,1,,0.3,0.1,0.0
        test,2,,0.9,0.4,0.2

    or a folder holding ``train.csv`` and ``test.csv``, each with these columns but ``split`` (the same
    feature columns in both; ``clean_label`` in ``train.csv`` only).

an image folder (torchvision's ``ImageFolder`` layout)
    ``<path>/train/<class name>/<image>`` and ``<path>/test/<class name>/<image>`` (any of
    :data:`pyrobust.data.images.IMAGE_EXTENSIONS`). Classes are numbered in the sorted order of the class
    folder names of ``train/`` and ``test/`` together (so that both splits agree). Optionally
    ``<path>/noisy_labels.csv`` with a header row and columns ``file`` (path relative to ``train/``, e.g.
    ``cat/001.jpg``) and ``label`` (a class folder name, else a class index), one row per training image:
    then ``y_train`` is the CSV's noisy labels and the folders give ``y_train_clean``. Training images may
    also lie directly in ``train/`` (no class folder, clean label unknown): the CSV must then label them.
    Images are decoded with PIL to float32 ``N x C x H x W`` in [0, 1] (``C`` = 1 when the first image is
    greyscale, else 3), all of one size unless ``image_size`` resizes them; :func:`image_folder` gives the
    same files as lazily decoded ``torch.utils.data.Dataset`` objects instead, for folders too large to
    hold in memory.

Features: uint8 arrays are scaled to float32 in [0, 1] (``x / 255``, as MNIST); float arrays become float32
(and must be finite); other integer arrays are kept as int64 (word ids, for the embedding networks).
Image-shaped arrays come out channels-first, ``N x C x H x W``: ``n x H x W`` gains ``C = 1``, and
``n x H x W x C`` with ``C`` in (1, 3, 4) (and dimension 1 not) is transposed. ``flatten=True`` gives
``N x d`` instead (the ``fc`` network's input).

Labels: integers in ``[0, C)``, ``C = num_classes`` if given, else the largest label (of any split, noisy
or clean) plus one. The files are untrusted: ``np.load(allow_pickle=False)``, every shape, dtype and range
checked, and any problem raises ``DataFormatError`` naming the file and what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrobust.data._common import DataFormatError, Dataset, DatasetNotAvailable
from pyrobust.data.array_checks import LABEL_ARRAYS, build_dataset, infer_num_classes
from pyrobust.data.array_files import OPTIONAL_ARRAYS, REQUIRED_ARRAYS, read_npy_folder, read_npz
from pyrobust.data.csv_table import read_csv
from pyrobust.data.image_folder import (
    MAX_IMAGE_BYTES,
    NOISY_LABELS_CSV,
    ImageFolderData,
    decode_folder,
    image_folder,
)

#: The training settings :func:`register_arrays_dataset` gives each network (the paper's, sec. 5.1: AdaGrad
#: as for MNIST and IMDB, SGD as for CIFAR-10), before the caller's ``training`` overrides.
_ADAGRAD = dict(optimizer="adagrad", lr=0.01, adagrad_eps=1e-6, epochs=40)
_SGD = dict(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4, epochs=120, lr_milestones=(40, 80))


def load_arrays(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    num_classes: int | None = None,
    flatten: bool = False,
    image_size: int | tuple[int, int] | None = None,
    labels_csv: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a data set of your own from ``path`` (any layout of the module docstring).

    Args:
        path: an ``.npz`` file, a ``.csv`` file, or a folder (of ``.npy`` files, ``train.csv`` +
            ``test.csv``, or ``train/`` + ``test/`` image folders), recognised in that order.
        name: the returned ``Dataset.name`` (default: the file or folder name without extension).
        num_classes: ``C``; default: the largest label plus one. Labels must lie in ``[0, C)``, ``C >= 2``.
        flatten: return ``x`` as ``N x d`` (``d`` = the product of the feature dimensions).
        image_size: image folders only: resize every image to ``(height, width)`` (an int: square).
        labels_csv: image folders only: the noisy-label CSV (default ``<path>/noisy_labels.csv`` if present).

    Returns:
        a :class:`Dataset`: ``x`` float32 (or int64 ids), ``y`` int64 ``N``; ``y_train_clean`` or
        ``clean_indices`` + ``clean_labels`` where the files give trusted labels (``Dataset.
        transition_from_clean()`` then counts the true ``T``).

    Raises:
        DatasetNotAvailable: ``path`` (or an image it lists) does not exist.
        DataFormatError: a file is unreadable, truncated, misses an array or column, has a wrong shape or
            dtype, non-finite features, or labels out of range (the message names the file).
        ValueError: ``num_classes`` < 2.
    """
    path = Path(os.path.expanduser(os.fspath(path)))
    if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) != num_classes
                                    or num_classes < 2):
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    name = name or path.name.split(".")[0] or "custom"
    kind = _layout(path)
    if kind == "images":
        folder = image_folder(path, labels_csv=labels_csv, num_classes=num_classes)
        arrays, sources = decode_folder(folder, image_size), folder.sources
        num_classes = folder.num_classes if num_classes is None else num_classes
    elif kind == "npz":
        arrays, sources = read_npz(path)
    elif kind == "npy":
        arrays, sources = read_npy_folder(path)
    else:
        arrays, sources = read_csv(path)
    return build_dataset(name, arrays, sources, num_classes, flatten)


def read_num_classes(path: str | os.PathLike[str], *, labels_csv: str | os.PathLike[str] | None = None) -> int:
    """``C`` of the data set at ``path`` as :func:`load_arrays` infers it, reading only what it needs:
    the label arrays of an ``.npz``/``.npy`` folder, the class folders of an image folder.

    Raises: as :func:`load_arrays`.
    """
    path = Path(os.path.expanduser(os.fspath(path)))
    kind = _layout(path)
    if kind == "images":
        return image_folder(path, labels_csv=labels_csv).num_classes
    if kind in ("npz", "npy"):
        reader = read_npz if kind == "npz" else read_npy_folder
        arrays, sources = reader(path, only=LABEL_ARRAYS)
        return infer_num_classes(arrays, sources)
    return load_arrays(path).num_classes


# --- registration -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArraysLoader:
    """The loader of a registered data set of your own: ``ArraysLoader(path, ...)(root)`` calls
    :func:`load_arrays` (``root`` is ignored: ``path`` is absolute). Picklable."""

    path: str
    name: str
    num_classes: int
    flatten: bool = False
    image_size: int | tuple[int, int] | None = None
    labels_csv: str | None = None

    def __call__(self, root: Any = None) -> Dataset:
        return load_arrays(self.path, name=self.name, num_classes=self.num_classes, flatten=self.flatten,
                           image_size=self.image_size, labels_csv=self.labels_csv)


def register_arrays_dataset(
    name: str,
    path: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    network: str = "fc",
    flatten: bool | None = None,
    image_size: int | tuple[int, int] | None = None,
    labels_csv: str | os.PathLike[str] | None = None,
    training: Mapping[str, Any] | None = None,
    replace: bool = False,
    **info: Any,
) -> Any:
    """Register the data set at ``path`` as ``name``, so that ``pyrobust.data.load(name)`` loads it.

    Args:
        name: a lower-case identifier (``my_data``), not taken unless ``replace``.
        path: as :func:`load_arrays`; a relative path is resolved against the current directory now.
        num_classes: ``C``; default: read from the labels now (:func:`read_num_classes`), so the file must
            exist. When given, the files are not read until the data set is loaded.
        network: the network trained on it by default (a name of ``pyrobust.catalog.NETWORKS``).
        flatten: return ``N x d`` features; default: only for the ``fc`` network.
        image_size, labels_csv: as :func:`load_arrays`.
        training: overrides of the default training settings (``pyrobust.experiment.TrainConfig`` keys):
            AdaGrad (lr 0.01, 40 epochs) for ``fc``/``embedding``/``lstm``, SGD (lr 0.01, momentum 0.9,
            weight decay 1e-4, 120 epochs, lr / 10 at 40 and 80) for the ResNets — the paper's, sec. 5.1.
        replace: replace an entry of the same name.
        info: further fields of :class:`pyrobust.registry.DatasetInfo` (``label``, ``columns``, ``seeds``,
            ``estimator``, ``runtime``, ...). ``columns`` defaults to ``(("none", 0.0),)``: train on the
            labels as given, without adding synthetic noise.

    Returns:
        the registered :class:`pyrobust.registry.DatasetInfo`.

    Raises:
        ValueError: the name is taken or invalid, an unknown network, ``num_classes`` < 2.
        DatasetNotAvailable, DataFormatError: reading ``C`` from the files failed (``num_classes=None``).
    """
    from pyrobust.catalog import NETWORKS
    from pyrobust.registry import register_dataset

    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; known: {', '.join(NETWORKS)}")
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    labels_csv = None if labels_csv is None else os.path.abspath(os.fspath(labels_csv))
    if num_classes is None:
        num_classes = read_num_classes(path, labels_csv=labels_csv)
    defaults = _SGD if network.startswith("resnet") else _ADAGRAD
    settings = {"model": network, **defaults, **(training or {})}
    loader = ArraysLoader(str(path), name, int(num_classes), network == "fc" if flatten is None else flatten,
                          image_size, labels_csv)
    return register_dataset(name, loader, replace=replace, num_classes=int(num_classes), training=settings,
                            networks=(network,), **info)


# --- layouts ------------------------------------------------------------------------------------------


def _layout(path: Path) -> str:
    if not path.exists():
        raise DatasetNotAvailable(f"{path}: no such file or folder")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".npz", ".csv"):
            return suffix[1:]
        raise DataFormatError(f"{path}: expected an .npz or .csv file, or a folder")
    if (path / "x_train.npy").exists():
        return "npy"
    if (path / "train.csv").exists():
        return "csv"
    if (path / "train").is_dir():
        return "images"
    raise DataFormatError(f"{path}: a folder of your own data holds x_train.npy (and y_train.npy, ...), or "
                          "train.csv and test.csv, or image folders train/ and test/; found none of them")


# The constants, ImageFolderData and image_folder live in the per-format modules; re-exported here, the
# entry point users import them from.
__all__ = [
    "ArraysLoader",
    "ImageFolderData",
    "MAX_IMAGE_BYTES",
    "NOISY_LABELS_CSV",
    "OPTIONAL_ARRAYS",
    "REQUIRED_ARRAYS",
    "image_folder",
    "load_arrays",
    "read_num_classes",
    "register_arrays_dataset",
]
