"""Saving and loading the kept weights of a Clothing1M run (Table 3's #8 starts from #6's checkpoint)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import nn

from pyrobust._io import atomic_write

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``model``'s state dict (tensors moved to CPU) to ``path`` atomically (``torch.save`` format,
    loadable with ``weights_only=True``).

    Raises:
        OSError: the folder cannot be written; ``path`` is then left as it was.
    """
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return atomic_write(path, buffer.getvalue())


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str], *, what: str = "init_checkpoint") -> nn.Module:
    """Load a state dict written by :func:`save_checkpoint` into ``model`` (same network, same head).

    Read with ``torch.load(weights_only=True, map_location="cpu")``.

    Raises:
        FileNotFoundError: no file at ``path`` (the message names ``what``).
        ValueError: not a weights-only torch file, or not a state dict of this network (keys or shapes
            differ; the message names the file).
    """
    import pickle
    import zipfile

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: {path} does not exist (write it with an earlier run's --checkpoint)")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{what}: {path}: not a weights-only torch file ({type(err).__name__})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{what}: {path}: expected a state dict, got {type(state).__name__}")
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()
        raise ValueError(f"{what}: {path}: not a checkpoint of this network ({' '.join(first[:3])})") from None
    return model
