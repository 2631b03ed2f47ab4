"""The one atomic writer: every file pyrobust writes goes through :func:`atomic_write`.

A file is written to a temporary name in the same folder, flushed and fsynced, then moved onto its final
name with ``os.replace`` (atomic on POSIX and Windows within one file system). A reader, a resumed
Snakemake run or a killed job therefore never finds a partial file under the final name; on any error
(``ENOSPC`` included) the temporary file is removed and the error propagates.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "write_json", "write_npy", "write_text"]


def atomic_write(path: str | os.PathLike[str], payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically (parent folders are created); return the path.

    Raises:
        OSError: the folder cannot be written or the disk is full; ``path`` is then left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as strict JSON (no NaN or infinity: ``ValueError``) to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=1, allow_nan=False) + "\n")


def write_npy(path: str | os.PathLike[str], array: Any) -> Path:
    """Save ``array`` as ``.npy`` (no pickles) at ``path``, exactly that name, atomically."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return atomic_write(path, buffer.getvalue())
