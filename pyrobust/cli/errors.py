"""User errors of the ``pyrobust`` command: one line that names the file and the problem.

Inputs are read inside :func:`reading`, which turns what a bad file raises into ``ValueError("<path>:
<problem>")``; outputs are checked (:func:`check_output`) before any work; :func:`message` puts an
exception on one line for ``pyrobust <command>: error: ...``.
"""

from __future__ import annotations

import os
import pickle
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["BAD_FILE", "check_output", "message", "one_line", "reading"]

#: What reading a file that is missing, of another format, truncated or damaged raises (numpy, zipfile,
#: zlib, pickle, json and pandas readers; json's and pandas' errors and UnicodeDecodeError are
#: ValueErrors). Only caught around the reading of a named input (:func:`reading`), where they can mean
#: nothing but a bad file; anywhere else a KeyError or EOFError is a bug and keeps its traceback.
BAD_FILE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, pickle.UnpicklingError)


def one_line(text: str) -> str:
    """``text`` on one line: a multi-line message (a list of files to download) joined with "; "."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    out = lines[0] if lines else ""
    for line in lines[1:]:
        out += (" " if out.endswith(":") else "; ") + line
    return out


def message(err: BaseException) -> str:
    """The one-line message of a user error: ``<file>: <problem>`` for an ``OSError`` naming a file."""
    if isinstance(err, OSError) and err.strerror:
        if err.filename is None:  # OSError(errno, message): the message without "[Errno 28] "
            return one_line(err.strerror)
        # os.replace(tmp, dest) names both: the destination is the user's file
        name = err.filename2 if err.filename2 is not None else err.filename
        return one_line(f"{os.fsdecode(name) if isinstance(name, bytes) else name}: {err.strerror}")
    if isinstance(err, UnicodeDecodeError):
        return f"not a text file (not {err.encoding.upper()}: {err.reason} at byte offset {err.start})"
    if isinstance(err, KeyError):
        return f"missing {err.args[0]!r}" if err.args else "missing key"
    return one_line(str(err)) or type(err).__name__


@contextmanager
def reading(path: str | os.PathLike[str], *also: type[BaseException]) -> Iterator[None]:
    """Read the input ``path`` inside: what the readers raise on a bad file (:data:`BAD_FILE`, and the
    types in ``also``) becomes ``ValueError("<path>: <problem>")``, the path added unless the loader's
    message starts with it already."""
    try:
        yield
    except (*BAD_FILE, *also) as err:
        text = message(err)
        names = {os.fspath(path), str(Path(path)), os.path.abspath(path)}
        if not any(text.startswith(f"{name}: ") for name in names):
            text = f"{os.fspath(path)}: {text}"
        raise ValueError(text) from err


def check_output(path: str | os.PathLike[str], *, directory: bool = False) -> None:
    """Fail before any work (a training run) when ``path`` cannot be written as a file (or a directory
    with ``directory``): a directory (a file) is in the way, or an existing ancestor is not a directory."""
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a directory")
    if not directory and path.is_dir():
        raise ValueError(f"{path}: is a directory")
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise ValueError(f"{path}: {parent} is not a directory")
            break
