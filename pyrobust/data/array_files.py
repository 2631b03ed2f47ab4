"""The ``.npz`` archive and the folder of ``.npy`` files of :func:`pyrobust.data.arrays.load_arrays`.

Both hold the same named arrays (:data:`REQUIRED_ARRAYS`, then optionally :data:`OPTIONAL_ARRAYS`); an
unknown name is an error, so that a misspelt ``y_train_clean`` is not silently ignored. The files are
untrusted: ``np.load(allow_pickle=False)``, and any read error becomes ``DataFormatError`` naming the file.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pyrobust.data._common import DataFormatError

#: Names of the arrays of an ``.npz`` / ``.npy`` folder: required, then optional.
REQUIRED_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL_ARRAYS = ("y_train_clean", "clean_indices", "clean_labels")


def read_npz(path: Path, only: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    arrays = {}
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):  # an .npy file under an .npz name
            raise DataFormatError(f"{path}: not an .npz archive (np.savez) but a single array")
        with npz:
            names = [n.removesuffix(".npy") for n in npz.files]
            check_array_names(names, path)
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


def read_npy_folder(path: Path, only: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    names = sorted(p.stem for p in path.glob("*.npy"))
    check_array_names(names, path)
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


def check_array_names(names: Sequence[str], where: Path) -> None:
    unknown = sorted(set(names) - set(REQUIRED_ARRAYS) - set(OPTIONAL_ARRAYS))
    if unknown:
        raise DataFormatError(f"{where}: unexpected array(s) {', '.join(unknown)}; the known names are "
                              f"{', '.join(REQUIRED_ARRAYS + OPTIONAL_ARRAYS)}")
    missing = [n for n in REQUIRED_ARRAYS if n not in names]
    if missing:
        raise DataFormatError(f"{where}: missing array(s) {', '.join(missing)}")


__all__ = ["OPTIONAL_ARRAYS", "REQUIRED_ARRAYS", "check_array_names", "read_npy_folder", "read_npz"]
