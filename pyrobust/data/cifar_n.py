"""CIFAR-10N and CIFAR-100N: real human label noise on the CIFAR training images (Wei et al., ICLR 2022).

Source: J. Wei, Z. Zhu, H. Cheng, T. Liu, G. Niu, Y. Liu, "Learning with Noisy Labels Revisited: A Study
Using Real-World Human Annotations", ICLR 2022; files ``data/CIFAR-10_human.pt`` and
``data/CIFAR-100_human.pt`` of the repository UCSC-REAL/cifar-10-100n, pinned (URL and SHA-256) in
:data:`pyrobust.catalog.LABEL_FILES` under ``cifar10n`` and ``cifar100n``: ``pyrobust.data.fetch("cifar10n")``
downloads the CIFAR-10 file into ``<data root>/cifar10n/``.

Each file is a ``torch.save`` zip whose pickle holds a dict of label arrays, one entry per training image
in the order of the CIFAR python batches (``data_batch_1`` .. ``data_batch_5``; CIFAR-100's ``train``):
the order of :func:`pyrobust.data.cifar.load_cifar`'s ``y_train``, so ``clean_label == y_train``.

- CIFAR-10N: ``clean_label``, ``aggre_label`` (majority vote of 3 annotators, 9.0 % noise),
  ``random_label1`` .. ``random_label3`` (one annotator each, 17-18 %), ``worse_label`` (a wrong label
  whenever one annotator gave one, 40.2 %); int64 NumPy arrays of 50,000 classes in [0, 10).
- CIFAR-100N: ``clean_label``, ``noisy_label`` (40.2 % noise) int64 NumPy arrays in [0, 100), and
  ``clean_coarse_label``, ``noisy_coarse_label`` (the 20 superclasses) as Python lists.

``torch.load(weights_only=True)`` refuses these pickles as they are (NumPy arrays are not tensors): this
module allows exactly the NumPy globals they reference (:data:`NUMPY_GLOBALS`: ``_reconstruct``,
``ndarray``, ``dtype`` and the int64 dtype class) and nothing else, so a crafted file naming any other
global (``os.system``, a class of its own, another dtype) is refused with that global's name.

The human-noise settings (:data:`HUMAN_NOISE_SETTINGS`) name one label set each; :func:`human_noise` gives
its noisy labels and the empirical true ``T`` counted from the (clean, human) pairs of all 50,000 images.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pyrobust.catalog import HUMAN_NOISE
from pyrobust.data._common import DataFormatError, Dataset, DatasetNotAvailable, data_root
from pyrobust.data.download import dataset_dir, fetch, placement_hint, remotes

#: Number of CIFAR training images, hence of labels in each array (the check's default).
NUM_TRAIN = 50_000

#: The human-noise settings: name -> (CIFAR data set, key of its CIFAR-N file), from the catalogue's
#: :data:`pyrobust.catalog.HUMAN_NOISE`.
HUMAN_NOISE_SETTINGS: dict[str, tuple[str, str]] = {
    setting: (dataset, key) for setting, (dataset, _, key) in HUMAN_NOISE.items()
}

#: CIFAR data set -> (label files' name in ``pyrobust.catalog.LABEL_FILES``, number of classes).
CIFAR_N: dict[str, tuple[str, int]] = {"cifar10": ("cifar10n", 10), "cifar100": ("cifar100n", 100)}

#: The keys of each published file -> number of classes of the key (CIFAR-100's superclasses: 20).
_KEYS: dict[str, dict[str, int]] = {
    "cifar10": {k: 10 for k in ("clean_label", "aggre_label", "worse_label", "random_label1", "random_label2",
                                "random_label3")},
    "cifar100": {"clean_label": 100, "noisy_label": 100, "clean_coarse_label": 20, "noisy_coarse_label": 20},
}
_REQUIRED = {"cifar10": tuple(_KEYS["cifar10"]), "cifar100": ("clean_label", "noisy_label")}

_reconstruct = np.ndarray.__reduce__(np.empty(0))[0]  # numpy(._)core.multiarray._reconstruct

#: The only globals :func:`load_cifar_n_labels` lets ``torch.load(weights_only=True)`` resolve, as
#: ``(object, name in the pickle)``: what a pickled int64 NumPy array references (``_codecs.encode``, for
#: the bytes of protocol-2 pickles, is among torch's defaults). ``_reconstruct`` under both module names:
#: the published files were written by NumPy 1 (``numpy.core``), a re-saved copy by NumPy 2 (``numpy._core``).
NUMPY_GLOBALS = (
    (_reconstruct, "numpy.core.multiarray._reconstruct"),
    (_reconstruct, "numpy._core.multiarray._reconstruct"),
    (np.ndarray, "numpy.ndarray"),
    (np.dtype, "numpy.dtype"),
    (type(np.dtype(np.int64)), f"{type(np.dtype(np.int64)).__module__}.{type(np.dtype(np.int64)).__name__}"),
)


def load_cifar_n_labels(path: str | os.PathLike[str], *, num_examples: int | None = NUM_TRAIN) -> dict[str, np.ndarray]:
    """Read a CIFAR-N label file (``CIFAR-10_human.pt`` or ``CIFAR-100_human.pt``), checked.

    Args:
        path: the file.
        num_examples: the length every label array must have (50,000, the CIFAR training set); ``None``
            only checks that they are all equally long (for small test files).

    Returns:
        ``{key: labels}``, each an int64 NumPy array of shape ``(num_examples,)``: CIFAR-10N's
        ``clean_label``, ``aggre_label``, ``random_label1``-``3``, ``worse_label`` (classes in [0, 10)), or
        CIFAR-100N's ``clean_label``, ``noisy_label`` (in [0, 100)) and, where present,
        ``clean_coarse_label``, ``noisy_coarse_label`` (in [0, 20)). Which of the two is recognised from
        the keys; other keys are an error.

    Raises:
        DatasetNotAvailable: no such file.
        RuntimeError: torch is older than 2.6 (no ``safe_globals`` with named objects).
        DataFormatError: not a ``torch.save`` zip, a pickle naming a global other than
            :data:`NUMPY_GLOBALS` (the message names it), not a dict of the keys above, an array not 1-D
            integer, of another length, or with a class out of range (the message names the file).
    """
    if torch.__version__ < "2.6":  # safe_globals with (object, name) pairs
        raise RuntimeError(f"reading CIFAR-N label files needs torch >= 2.6, this is {torch.__version__}")
    path = Path(path)
    if not path.is_file():
        raise DatasetNotAvailable(f"{path}: CIFAR-N label file missing")
    if not zipfile.is_zipfile(path):
        raise DataFormatError(f"{path}: not a torch.save zip archive (truncated, or another format)")
    try:
        with torch.serialization.safe_globals(list(NUMPY_GLOBALS)):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for a forbidden global; zip/EOF errors for a damaged file
        raise DataFormatError(f"{path}: not a CIFAR-N label file: {_reason(err)}") from err
    if not isinstance(content, dict) or not all(isinstance(k, str) for k in content):
        raise DataFormatError(f"{path}: expected a dict of label arrays, got {type(content).__name__}")
    variant = "cifar10" if "aggre_label" in content else "cifar100"
    unknown = sorted(set(content) - set(_KEYS[variant]))
    missing = [k for k in _REQUIRED[variant] if k not in content]
    if unknown or missing:
        raise DataFormatError(f"{path}: the keys {sorted(content)} are not those of CIFAR-10N "
                              f"({', '.join(_KEYS['cifar10'])}) or CIFAR-100N ({', '.join(_KEYS['cifar100'])})")
    labels = {}
    for key, values in content.items():
        try:
            y = np.asarray(values)
        except (ValueError, TypeError) as err:
            raise DataFormatError(f"{path}: {key} is not an array of labels ({err})") from err
        if y.dtype.kind not in "iu" or y.ndim != 1:
            raise DataFormatError(f"{path}: {key} must be a 1-D array of integer labels, got {y.dtype} {y.shape}")
        expected = num_examples if num_examples is not None else len(content["clean_label"])
        if len(y) != expected:
            raise DataFormatError(f"{path}: {key} has {len(y)} labels, expected {expected} (one per training image)")
        C = _KEYS[variant][key]
        if y.size and (y.min() < 0 or y.max() >= C):
            raise DataFormatError(f"{path}: {key} holds classes outside [0, {C}) (min {y.min()}, max {y.max()})")
        labels[key] = y.astype(np.int64)
    return labels


def _reason(err: Exception) -> str:
    """The gist of torch.load's error (the refused global or type), without its advice to allow it."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for marker in ("Unsupported global", "unsupported GLOBAL", "Can only build", "Unsupported operand"):
        for line in lines:
            if marker in line:
                gist = line.split(" was not an allowed global")[0].removeprefix("WeightsUnpickler error: ")
                return f"{gist} (only the NumPy globals of an int64 label array are allowed)"
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def cifar_n_path(dataset: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The CIFAR-N label file of ``dataset`` (``"cifar10"``/``"cifar100"``): ``<root>/cifar10n/CIFAR-10_human.pt``
    (where ``fetch("cifar10n")`` puts it), else ``<root>/CIFAR-10_human.pt`` if that exists.

    Raises:
        ValueError: ``dataset`` is not ``cifar10`` or ``cifar100``.
    """
    name = _files_name(dataset)
    filename = remotes(name)[0].filename
    fetched = dataset_dir(name, root) / filename
    beside = data_root(root) / filename
    return beside if not fetched.exists() and beside.exists() else fetched


def load_cifar_n(
    dataset: str,
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    num_examples: int | None = NUM_TRAIN,
) -> dict[str, np.ndarray]:
    """The CIFAR-N labels of ``dataset`` (``"cifar10"``/``"cifar100"``) from the data root: see
    :func:`load_cifar_n_labels` (the returned dict) and :func:`cifar_n_path` (where the file is looked up).

    Raises:
        ValueError: another ``dataset``.
        DatasetNotAvailable: the file is absent (the message says what to put where) and ``download`` is
            false, or it cannot be downloaded.
        DataFormatError: as :func:`load_cifar_n_labels`.
        pyrobust.data.ChecksumMismatch: ``download=True`` found a file with another SHA-256.
    """
    name = _files_name(dataset)
    path = cifar_n_path(dataset, root)
    if not path.exists():
        if not download:
            raise DatasetNotAvailable(f"{dataset}: the CIFAR-N labels {path} are absent.\n{placement_hint(name, root)}")
        fetch(name, root)
    return load_cifar_n_labels(path, num_examples=num_examples)


def _files_name(dataset: str) -> str:
    if dataset not in CIFAR_N:
        raise ValueError(f"CIFAR-N relabels cifar10 and cifar100, not {dataset!r}")
    return CIFAR_N[dataset][0]


def human_settings(dataset: str | None = None) -> list[str]:
    """The human-noise settings of ``dataset`` (``cifar10``: ``human-aggregate``, ``human-random1``-``3``,
    ``human-worst``; ``cifar100``: ``human-noisy``), or of both when ``None``."""
    return [s for s, (d, _) in HUMAN_NOISE_SETTINGS.items() if dataset is None or d == dataset]


@dataclass(frozen=True, eq=False)
class HumanNoise:
    """The labels of one human-noise setting, and its empirical noise.

    Attributes:
        setting: its name (``human-aggregate``, ...).
        dataset: ``cifar10`` or ``cifar100``.
        key: the label set of the CIFAR-N file it uses (``aggre_label``, ...).
        noisy_labels: int64 ``(50000,)``, the human labels, in the training images' order.
        clean_labels: int64 ``(50000,)``, the original CIFAR labels (``clean_label``).
        T: float64 ``C x C`` CPU tensor, ``T[i, j] = #{clean = i, human = j} / #{clean = i}``: the empirical
            true transition matrix (Patrini et al. 2017's ``T``, counted over all training images).
    """

    setting: str
    dataset: str
    key: str
    noisy_labels: np.ndarray
    clean_labels: np.ndarray
    T: torch.Tensor

    @property
    def num_classes(self) -> int:
        return int(self.T.shape[0])

    @property
    def noise_rate(self) -> float:
        """The fraction of training images whose human label differs from the clean one."""
        return float(np.mean(self.noisy_labels != self.clean_labels))

    def apply(self, data: Dataset) -> Dataset:
        """``data`` (the loaded CIFAR data set) with ``y_train`` replaced by the human labels and
        ``y_train_clean`` holding its clean labels.

        Raises:
            DataFormatError: ``data`` is not this setting's data set, or its training labels are not the
                CIFAR-N ``clean_label`` (another order or another training set).
        """
        y = data.y_train.cpu().numpy()
        if data.num_classes != self.num_classes or not np.array_equal(y, self.clean_labels):
            raise DataFormatError(f"{data.name}: its training labels are not CIFAR-N's clean labels of "
                                  f"{self.dataset} (the labels must follow the order of the CIFAR python batches)")
        return dataclasses.replace(data, y_train=torch.from_numpy(self.noisy_labels.copy()),
                                   y_train_clean=data.y_train.clone())


def human_noise_from_labels(labels: Mapping[str, np.ndarray], setting: str) -> HumanNoise:
    """:class:`HumanNoise` of ``setting`` from CIFAR-N labels already read (:func:`load_cifar_n_labels`).

    Raises:
        ValueError: an unknown setting (the message lists them).
        DataFormatError: ``labels`` lack the setting's label set (another data set's file).
    """
    if setting not in HUMAN_NOISE_SETTINGS:
        raise ValueError(f"unknown human-noise setting {setting!r}; known: {', '.join(HUMAN_NOISE_SETTINGS)}")
    dataset, key = HUMAN_NOISE_SETTINGS[setting]
    if key not in labels or "clean_label" not in labels:
        raise DataFormatError(f"{setting}: the CIFAR-N labels given have no {key!r} (is it the {dataset} file?)")
    from pyrobust.noise import from_clean_subset

    clean, noisy = np.asarray(labels["clean_label"], np.int64), np.asarray(labels[key], np.int64)
    T = from_clean_subset(clean, noisy, CIFAR_N[dataset][1])
    return HumanNoise(setting, dataset, key, noisy, clean, T)


def human_noise(
    setting: str,
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    num_examples: int | None = NUM_TRAIN,
) -> HumanNoise:
    """The human labels of ``setting`` and their empirical ``T``, read from the data root.

    ``human-aggregate``, ``human-random1``-``3``, ``human-worst`` (CIFAR-10N) or ``human-noisy``
    (CIFAR-100N); see :data:`HUMAN_NOISE_SETTINGS`. Apply it to the loaded CIFAR data set with
    :meth:`HumanNoise.apply`.

    Raises:
        ValueError: an unknown setting.
        DatasetNotAvailable, DataFormatError: as :func:`load_cifar_n`.
    """
    if setting not in HUMAN_NOISE_SETTINGS:
        raise ValueError(f"unknown human-noise setting {setting!r}; known: {', '.join(HUMAN_NOISE_SETTINGS)}")
    dataset = HUMAN_NOISE_SETTINGS[setting][0]
    return human_noise_from_labels(load_cifar_n(dataset, root, download=download, num_examples=num_examples),
                                   setting)


__all__ = [
    "CIFAR_N",
    "HUMAN_NOISE_SETTINGS",
    "HumanNoise",
    "NUMPY_GLOBALS",
    "NUM_TRAIN",
    "cifar_n_path",
    "human_noise",
    "human_noise_from_labels",
    "human_settings",
    "load_cifar_n",
    "load_cifar_n_labels",
]
