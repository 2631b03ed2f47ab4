"""Reading a user-supplied transition matrix from a file (an untrusted input)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from pyrobust.noise._validate import _validated

__all__ = ["load_transition_matrix"]

# Largest number of classes load_transition_matrix accepts (a C x C float64 file of 10^8 entries is 800 MB).
_MAX_CLASSES_IN_FILE = 10_000
_NPY_MAGIC = b"\x93NUMPY"


def load_transition_matrix(path: str | os.PathLike[str]) -> torch.Tensor:
    """Load a user-supplied ``T`` from a ``.npy`` or ``.csv`` file (comma-separated rows, no header).

    ``T[i, j] = p(noisy = j | clean = i)`` (Patrini et al. 2017's convention), e.g. one known from the data
    collection, to train the forward or backward corrected losses with. The file is untrusted: ``.npy``
    is read with ``allow_pickle=False`` and its shape checked from the header before the data is read;
    every error names the file.

    Args:
        path: a ``.npy`` file holding a ``C x C`` numeric array (integer or float), or a ``.csv`` file of
            ``C`` rows of ``C`` comma-separated numbers; ``2 <= C <= 10,000``.

    Returns:
        ``T``, a float64 ``C x C`` CPU tensor.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the suffix is not ``.npy``/``.csv``, the path is a directory, the file cannot be parsed
            (another format, truncated) or holds a pickle, is not square, has fewer than 2 or more than
            10,000 classes, does not hold numbers, or is not a valid (finite, non-negative,
            row-stochastic) transition matrix.

        Every message starts with ``"<path>: "``.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".npy", ".csv"):
        raise ValueError(f"{path}: unsupported transition matrix file type {suffix!r}; use .npy or .csv")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not a transition matrix file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        if suffix == ".npy":
            with open(path, "rb") as file:
                magic = file.read(len(_NPY_MAGIC))
            if magic != _NPY_MAGIC:
                kind = "an .npz archive" if magic.startswith(b"PK\x03\x04") else "not a .npy file"
                raise ValueError(f"{kind}; expected a .npy array")
            header = np.load(path, mmap_mode="r", allow_pickle=False)
            _check_loaded_shape(header.shape, path)
            if header.dtype.kind not in "fiu":
                raise ValueError(f"{path}: transition matrix must hold numbers, got dtype {header.dtype}")
            array = np.array(header, dtype=np.float64)
        else:
            if os.path.getsize(path) > 40 * _MAX_CLASSES_IN_FILE**2:
                raise ValueError(f"{path}: file too large for a transition matrix")
            with warnings.catch_warnings():  # "input contained no data": the error below says so
                warnings.simplefilter("ignore", UserWarning)
                array = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
            if array.size == 0:
                raise ValueError(f"{path}: holds no numbers (an empty file?)")
            _check_loaded_shape(array.shape, path)
    # numpy's readers raise any of these on a damaged, truncated or foreign file; all mean "bad file"
    except (OSError, ValueError, EOFError) as err:
        message = str(err).strip() or type(err).__name__
        if message.startswith(f"{path}: "):
            raise
        raise ValueError(f"{path}: cannot read a transition matrix: {message}") from None
    try:
        return _validated(torch.from_numpy(array), name="the transition matrix")
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None


def _check_loaded_shape(shape: tuple[int, ...], path: str) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{path}: transition matrix must be square C x C, got shape {shape}")
    if not 2 <= shape[0] <= _MAX_CLASSES_IN_FILE:
        raise ValueError(
            f"{path}: transition matrix must have 2 to {_MAX_CLASSES_IN_FILE} classes, got {shape[0]}"
        )
