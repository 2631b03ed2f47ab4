"""The one atomic writer: every file pyrobust writes goes through :func:`atomic_write`.

A file is written to a temporary name in the same folder (``.<name>.<random>.tmp``), flushed and fsynced,
then moved onto its final name with ``os.replace`` (atomic on POSIX and Windows within one file system),
and the folder is fsynced so that the new name survives a power loss. A reader, a resumed Snakemake run or
a killed job therefore never finds a partial file under the final name. On any error (``ENOSPC`` included)
the temporary file is removed, the final name is left as it was, and an :class:`OSError` of the same kind
(same ``errno``) names the file. A process killed with ``SIGKILL`` may leave its temporary file behind; no
reader takes it for a result (its name is hidden and ends in ``.tmp``).

The file gets the permissions ``open()`` would give a new file (``0o666`` less the umask), not the
owner-only ``0o600`` of :func:`tempfile.mkstemp`: results on a shared file system stay readable by the
group.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "write_json", "write_npy", "write_text"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Permissions of a written file: those of a file created with ``open(path, "w")``.
_FILE_MODE = 0o666 & ~_umask()


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable; a no-op where folders cannot be opened (Windows) or synced."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (and Windows) refuse fsync on a folder: the data itself is synced
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically (parent folders are created); return the path.

    Raises:
        OSError: the folder cannot be written or the disk is full (``errno`` kept, e.g. ``ENOSPC``; the
            message names ``path``); ``path`` is then left as it was and no temporary file remains.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            if hasattr(os, "fchmod"):
                os.fchmod(file.fileno(), _FILE_MODE)
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as error:
        _remove(tmp)
        reason = error.strerror or str(error) or type(error).__name__
        raise OSError(
            error.errno, f"cannot write {path}: {reason} (nothing was written under that name)"
        ) from error
    except BaseException:  # KeyboardInterrupt, SystemExit, ...: no partial file either
        _remove(tmp)
        raise
    _fsync_folder(path.parent)
    return path


def _remove(tmp: str | None) -> None:
    if tmp is not None:
        try:
            os.unlink(tmp)
        except OSError:
            pass


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
