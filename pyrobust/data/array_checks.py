"""The checks and conversion shared by every layout of :func:`pyrobust.data.arrays.load_arrays`: named
NumPy arrays in, a checked :class:`pyrobust.data.Dataset` out (rules in :mod:`pyrobust.data.arrays`).

The files are untrusted, so every shape, dtype and range is checked here, once for all layouts, and a
problem raises ``DataFormatError`` naming the file it came from (``sources[key]``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from pyrobust.data._common import DataFormatError, Dataset

#: The arrays holding class indices (noisy or clean), which bound ``C``.
LABEL_ARRAYS = ("y_train", "y_test", "y_train_clean", "clean_labels")


def infer_num_classes(arrays: Mapping[str, np.ndarray], sources: Mapping[str, str]) -> int:
    top = -1
    for key in LABEL_ARRAYS:
        if key in arrays:
            y = check_label_array(arrays[key], sources[key], key)
            if y.size:
                top = max(top, int(y.max()))
    if top < 1:
        raise DataFormatError(f"{sources['y_train']}: the labels name fewer than 2 classes (largest label {top})")
    return top + 1


def check_label_array(y: np.ndarray, source: str, key: str, length: int | None = None) -> np.ndarray:
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise DataFormatError(f"{source}: {key} must be a 1-D array of integer class indices, got {y.dtype} "
                              f"of shape {y.shape}")
    if length is not None and len(y) != length:
        raise DataFormatError(f"{source}: {key} has {len(y)} entries, expected {length}")
    if y.size and y.min() < 0:
        raise DataFormatError(f"{source}: {key} holds the negative label {int(y.min())}")
    return y


def build_dataset(name: str, arrays: dict[str, np.ndarray], sources: Mapping[str, str], num_classes: int | None,
           flatten: bool) -> Dataset:
    xs = {}
    for split in ("train", "test"):
        key = f"x_{split}"
        xs[split] = to_features(arrays[key], sources[key], key, flatten)
        check_label_array(arrays[f"y_{split}"], sources[f"y_{split}"], f"y_{split}", len(xs[split]))
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
        check_label_array(arrays["y_train_clean"], sources["y_train_clean"], "y_train_clean", n)
    elif ("clean_indices" in arrays) != ("clean_labels" in arrays):
        have = "clean_indices" if "clean_indices" in arrays else "clean_labels"
        raise DataFormatError(f"{sources[have]}: clean_indices and clean_labels go together, only {have} given")
    elif "clean_indices" in arrays:
        idx = check_label_array(arrays["clean_indices"], sources["clean_indices"], "clean_indices")
        check_label_array(arrays["clean_labels"], sources["clean_labels"], "clean_labels", len(idx))
        if idx.size and idx.max() >= n:
            raise DataFormatError(f"{sources['clean_indices']}: clean_indices holds {int(idx.max())}, but the "
                                  f"training set has {n} examples")
        if len(np.unique(idx)) != len(idx):
            raise DataFormatError(f"{sources['clean_indices']}: clean_indices repeats a training example")
    C = infer_num_classes(arrays, sources) if num_classes is None else int(num_classes)
    for key in LABEL_ARRAYS:
        if key in arrays and arrays[key].size and arrays[key].max() >= C:
            raise DataFormatError(f"{sources[key]}: {key} holds label {int(arrays[key].max())}, outside "
                                  f"[0, {C}) for {C} classes")
    for key in ("y_train_clean", "clean_indices", "clean_labels"):
        if key in arrays:
            clean_kwargs[key] = torch.from_numpy(arrays[key].astype(np.int64))
    label = lambda key: torch.from_numpy(arrays[key].astype(np.int64))  # noqa: E731
    return Dataset(name, xs["train"], label("y_train"), xs["test"], label("y_test"), num_classes=C, **clean_kwargs)


def to_features(x: np.ndarray, source: str, key: str, flatten: bool) -> torch.Tensor:
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


__all__ = ["LABEL_ARRAYS", "build_dataset", "check_label_array", "infer_num_classes", "to_features"]
