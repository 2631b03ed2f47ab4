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

import csv
import math
import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyrobust.data._common import DataFormatError, Dataset, DatasetNotAvailable
from pyrobust.data.images import IMAGE_EXTENSIONS, ImageFiles, open_image, to_tensor

#: Names of the arrays of an ``.npz`` / ``.npy`` folder: required, then optional.
REQUIRED_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL_ARRAYS = ("y_train_clean", "clean_indices", "clean_labels")
_LABEL_ARRAYS = ("y_train", "y_test", "y_train_clean", "clean_labels")

#: The noisy-label CSV of an image folder, looked up in the folder when ``labels_csv`` is not given.
NOISY_LABELS_CSV = "noisy_labels.csv"

#: Largest decoded image folder :func:`load_arrays` builds in memory (float32 bytes); beyond it, use
#: :func:`image_folder` (lazy decoding).
MAX_IMAGE_BYTES = 8 << 30

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
        arrays, sources = _decode_folder(folder, image_size), folder.sources
        num_classes = folder.num_classes if num_classes is None else num_classes
    elif kind == "npz":
        arrays, sources = _read_npz(path)
    elif kind == "npy":
        arrays, sources = _read_npy_folder(path)
    else:
        arrays, sources = _read_csv(path)
    return _build(name, arrays, sources, num_classes, flatten)


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
        reader = _read_npz if kind == "npz" else _read_npy_folder
        arrays, sources = reader(path, only=("y_train", "y_test", "y_train_clean", "clean_labels"))
        return _infer_num_classes(arrays, sources)
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


def _read_npz(path: Path, only: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    arrays = {}
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):  # an .npy file under an .npz name
            raise DataFormatError(f"{path}: not an .npz archive (np.savez) but a single array")
        with npz:
            names = [n.removesuffix(".npy") for n in npz.files]
            _check_names(names, path)
            for key in names:
                if only is None or key in only:
                    arrays[key] = npz[key]
    except DataFormatError:
        raise
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        # allow_pickle=False: an object array or a pickle raises ValueError; a truncated zip raises
        # BadZipFile, EOFError or OSError
        raise DataFormatError(f"{path}: not a readable .npz of numeric arrays ({type(err).__name__}: {err})") from err
    return arrays, {key: f"{path} [{key}]" for key in arrays}


def _read_npy_folder(path: Path, only: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    names = sorted(p.stem for p in path.glob("*.npy"))
    _check_names(names, path)
    arrays, sources = {}, {}
    for key in names:
        if only is not None and key not in only:
            continue
        file = path / f"{key}.npy"
        try:
            arrays[key] = np.load(file, allow_pickle=False)
        except (OSError, EOFError, ValueError) as err:  # ValueError: a pickle, or a truncated array
            raise DataFormatError(f"{file}: not a readable .npy of a numeric array ({type(err).__name__}: "
                                  f"{err})") from err
        sources[key] = str(file)
    return arrays, sources


def _check_names(names: Sequence[str], where: Path) -> None:
    unknown = sorted(set(names) - set(REQUIRED_ARRAYS) - set(OPTIONAL_ARRAYS))
    if unknown:
        raise DataFormatError(f"{where}: unexpected array(s) {', '.join(unknown)}; the known names are "
                              f"{', '.join(REQUIRED_ARRAYS + OPTIONAL_ARRAYS)}")
    missing = [n for n in REQUIRED_ARRAYS if n not in names]
    if missing:
        raise DataFormatError(f"{where}: missing array(s) {', '.join(missing)}")


def _read_csv(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A single CSV (``split`` column) or a folder with ``train.csv`` and ``test.csv``."""
    if path.is_file():
        header, rows = _csv_rows(path)
        if "split" not in header:
            raise DataFormatError(f"{path}: no 'split' column (one CSV holds both splits; or give a folder "
                                  "with train.csv and test.csv)")
        split_col = header.index("split")
        parts: dict[str, list[tuple[int, list[str]]]] = {"train": [], "test": []}
        for line, row in rows:
            split = row[split_col].strip()
            if split not in parts:
                raise DataFormatError(f"{path}, line {line}: split {split!r} is neither 'train' nor 'test'")
            parts[split].append((line, row[:split_col] + row[split_col + 1:]))
        header = header[:split_col] + header[split_col + 1:]
        tables = {split: (path, header, part) for split, part in parts.items()}
    else:
        tables = {}
        for split in ("train", "test"):
            file = path / f"{split}.csv"
            if not file.is_file():
                raise DataFormatError(f"{path}: {split}.csv is missing (a CSV folder holds train.csv and test.csv)")
            header, rows = _csv_rows(file)
            tables[split] = (file, header, rows)
        if [c for c in tables["train"][1] if c != "clean_label"] != tables["test"][1]:
            raise DataFormatError(f"{tables['test'][0]}: its columns {tables['test'][1]} differ from those of "
                                  f"{tables['train'][0]} {tables['train'][1]}")
    arrays: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for split, (file, header, rows) in tables.items():
        if "label" not in header:
            raise DataFormatError(f"{file}: no 'label' column")
        label_col = header.index("label")
        clean_col = header.index("clean_label") if "clean_label" in header else None
        features = [i for i, c in enumerate(header) if i not in (label_col, clean_col)]
        if not features:
            raise DataFormatError(f"{file}: no feature column (every column but split, label, clean_label)")
        if not rows:
            raise DataFormatError(f"{file}: no {split} rows")
        x = np.empty((len(rows), len(features)), dtype=np.float32)
        y = np.empty(len(rows), dtype=np.int64)
        clean = np.full(len(rows), -1, dtype=np.int64)
        for r, (line, row) in enumerate(rows):
            try:
                x[r] = [float(row[i]) for i in features]
            except ValueError:
                bad = next(header[i] for i in features if not _is_float(row[i]))
                raise DataFormatError(f"{file}, line {line}: column {bad!r} is not a number") from None
            y[r] = _csv_int(row[label_col], file, line, "label")
            if clean_col is not None and row[clean_col].strip():
                if split == "test":
                    raise DataFormatError(f"{file}, line {line}: a test row has a clean_label (test labels are "
                                          "taken as clean: put it in the label column)")
                clean[r] = _csv_int(row[clean_col], file, line, "clean_label")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
        sources[f"x_{split}"] = sources[f"y_{split}"] = str(file)
        if split == "train" and (known := np.flatnonzero(clean >= 0)).size:
            if known.size == len(clean):
                arrays["y_train_clean"] = clean
            else:
                arrays["clean_indices"], arrays["clean_labels"] = known, clean[known]
            for key in ("y_train_clean", "clean_indices", "clean_labels"):
                sources[key] = f"{file} [clean_label]"
    return arrays, sources


def _csv_rows(file: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        with open(file, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [c.strip() for c in next(reader, [])]
            if not header:
                raise DataFormatError(f"{file}: empty (a header row is expected)")
            if len(set(header)) != len(header):
                raise DataFormatError(f"{file}: repeated column names in the header {header}")
            rows = []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    raise DataFormatError(f"{file}, line {reader.line_num}: {len(row)} fields, the header has "
                                          f"{len(header)}")
                rows.append((reader.line_num, row))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataFormatError(f"{file}: not a readable CSV ({type(err).__name__}: {err})") from err
    return header, rows


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_int(text: str, file: Path, line: int, column: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise DataFormatError(f"{file}, line {line}: {column} {text!r} is not an integer class index") from None


# --- image folders -------------------------------------------------------------------------------------


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
    header, rows = _csv_rows(path)
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


def _decode_folder(folder: ImageFolderData, image_size: int | tuple[int, int] | None) -> dict[str, np.ndarray]:
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


# --- checks and conversion ----------------------------------------------------------------------------


def _infer_num_classes(arrays: Mapping[str, np.ndarray], sources: Mapping[str, str]) -> int:
    top = -1
    for key in _LABEL_ARRAYS:
        if key in arrays:
            y = _check_label_array(arrays[key], sources[key], key)
            if y.size:
                top = max(top, int(y.max()))
    if top < 1:
        raise DataFormatError(f"{sources['y_train']}: the labels name fewer than 2 classes (largest label {top})")
    return top + 1


def _check_label_array(y: np.ndarray, source: str, key: str, length: int | None = None) -> np.ndarray:
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise DataFormatError(f"{source}: {key} must be a 1-D array of integer class indices, got {y.dtype} "
                              f"of shape {y.shape}")
    if length is not None and len(y) != length:
        raise DataFormatError(f"{source}: {key} has {len(y)} entries, expected {length}")
    if y.size and y.min() < 0:
        raise DataFormatError(f"{source}: {key} holds the negative label {int(y.min())}")
    return y


def _build(name: str, arrays: dict[str, np.ndarray], sources: Mapping[str, str], num_classes: int | None,
           flatten: bool) -> Dataset:
    xs = {}
    for split in ("train", "test"):
        key = f"x_{split}"
        xs[split] = _features(arrays[key], sources[key], key, flatten)
        _check_label_array(arrays[f"y_{split}"], sources[f"y_{split}"], f"y_{split}", len(xs[split]))
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise DataFormatError(f"{sources['x_test']}: x_test has examples of shape {tuple(xs['test'].shape[1:])}, "
                              f"x_train of shape {tuple(xs['train'].shape[1:])}")
    if xs["train"].dtype != xs["test"].dtype:
        raise DataFormatError(f"{sources['x_test']}: x_test is {arrays['x_test'].dtype}, x_train "
                              f"{arrays['x_train'].dtype}")
    n = len(xs["train"])
    clean_kwargs: dict[str, torch.Tensor] = {}
    if "y_train_clean" in arrays:
        if "clean_indices" in arrays or "clean_labels" in arrays:
            raise DataFormatError(f"{sources['y_train_clean']}: give y_train_clean or clean_indices + "
                                  "clean_labels, not both")
        _check_label_array(arrays["y_train_clean"], sources["y_train_clean"], "y_train_clean", n)
    elif ("clean_indices" in arrays) != ("clean_labels" in arrays):
        have = "clean_indices" if "clean_indices" in arrays else "clean_labels"
        raise DataFormatError(f"{sources[have]}: clean_indices and clean_labels go together, only {have} given")
    elif "clean_indices" in arrays:
        idx = _check_label_array(arrays["clean_indices"], sources["clean_indices"], "clean_indices")
        _check_label_array(arrays["clean_labels"], sources["clean_labels"], "clean_labels", len(idx))
        if idx.size and idx.max() >= n:
            raise DataFormatError(f"{sources['clean_indices']}: clean_indices holds {int(idx.max())}, but the "
                                  f"training set has {n} examples")
        if len(np.unique(idx)) != len(idx):
            raise DataFormatError(f"{sources['clean_indices']}: clean_indices repeats a training example")
    C = _infer_num_classes(arrays, sources) if num_classes is None else int(num_classes)
    for key in _LABEL_ARRAYS:
        if key in arrays and arrays[key].size and arrays[key].max() >= C:
            raise DataFormatError(f"{sources[key]}: {key} holds label {int(arrays[key].max())}, outside "
                                  f"[0, {C}) for {C} classes")
    for key in ("y_train_clean", "clean_indices", "clean_labels"):
        if key in arrays:
            clean_kwargs[key] = torch.from_numpy(arrays[key].astype(np.int64))
    label = lambda key: torch.from_numpy(arrays[key].astype(np.int64))  # noqa: E731
    return Dataset(name, xs["train"], label("y_train"), xs["test"], label("y_test"), num_classes=C, **clean_kwargs)


def _features(x: np.ndarray, source: str, key: str, flatten: bool) -> torch.Tensor:
    """Checked features as float32 (uint8 / 255, floats as they are) or int64 ids, channels first."""
    if x.dtype.kind not in "fiu" or x.dtype.kind == "f" and x.dtype.itemsize > 8:
        raise DataFormatError(f"{source}: {key} must hold numbers (float, uint8 or integer ids), got {x.dtype}")
    if x.ndim < 2 or x.ndim > 4:
        raise DataFormatError(f"{source}: {key} must be n x d or image-shaped (n x H x W, n x H x W x C, "
                              f"n x C x H x W), got shape {x.shape}")
    if len(x) == 0 or math.prod(x.shape[1:]) == 0:
        raise DataFormatError(f"{source}: {key} is empty (shape {x.shape})")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataFormatError(f"{source}: {key} holds NaN or infinite values")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    if flatten:
        x = x.reshape(len(x), -1)
    x = np.ascontiguousarray(x)
    if x.dtype == np.uint8:
        return torch.from_numpy(x).to(torch.float32).div_(255.0)
    if x.dtype.kind == "f":
        return torch.from_numpy(x.astype(np.float32, copy=False))
    return torch.from_numpy(x.astype(np.int64, copy=False))


__all__ = [
    "ArraysLoader",
    "ImageFolderData",
    "MAX_IMAGE_BYTES",
    "NOISY_LABELS_CSV",
    "image_folder",
    "load_arrays",
    "read_num_classes",
    "register_arrays_dataset",
]
