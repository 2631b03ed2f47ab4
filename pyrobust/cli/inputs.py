"""The input files of the ``pyrobust`` subcommands, read (or checked) once so that a bad one is named:
probabilities, noisy labels, result records and the paper's Table 2 CSV.
"""

from __future__ import annotations

from pathlib import Path

from pyrobust.cli.errors import BAD_FILE, reading

__all__ = ["check_paper", "check_records", "load_array", "load_noisy_labels", "load_probs"]


def load_array(path: str, what: str):
    """A numeric array from a ``.npy`` file (no pickles) or a ``.csv`` file (comma-separated numbers, one
    header line allowed), for ``what`` (named in errors).

    Raises:
        ValueError: another suffix, an ``.npz`` or non-numeric ``.npy``, a CSV cell that is not a number; the
            message names ``path``.
    """
    import numpy as np

    suffix = Path(path).suffix.lower()
    with reading(path):
        with open(path, "rb") as file:
            magic = file.read(6)
        if magic == b"\x93NUMPY":  # by content: a .npy whatever its name
            array = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            array = _read_csv(path)
        else:
            kind = "an .npz archive" if magic.startswith(b"PK\x03\x04") else "not a .npy file"
            raise ValueError(f"{kind}; expected {what} as an .npy array or a .csv file")
        if what == "labels":
            array = _class_indices(array)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{path}: expected numeric {what}, got dtype {array.dtype}")
    return array


def _read_csv(path: str):
    """A .csv of numbers as a float64 array (a single column as a vector). One header line is recognised when
    a cell of it is not a number or is empty, and then a first column without a header (pandas' index) is
    left out; a header of numbers only cannot be told from data and is read as a row."""
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(path, header=None, skip_blank_lines=True)
    if len(frame) and not all(_is_number(v) and v == v for v in frame.iloc[0]):  # v == v: not NaN (empty)
        header = frame.iloc[0]
        frame = frame.iloc[1:]
        if len(header) > 1 and header.iloc[0] != header.iloc[0]:  # an unnamed first column: an index
            frame = frame.iloc[:, 1:]
    try:
        array = frame.to_numpy(dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"a cell is not a number ({error})") from None
    return array[:, 0] if array.ndim == 2 and array.shape[1] == 1 else array


def _class_indices(array):
    """Labels as int64 class indices: integers as they are, floats only when whole (1.0), else an error."""
    import numpy as np

    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"labels must be class indices (integers), got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or not np.all(array == np.round(array)):
            raise ValueError("labels must be whole class indices, got fractional or non-finite values")
    return array.astype(np.int64)


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def load_probs(path: str, n: int | None, C: int | None, labels_path: str | None):
    """The softmax ``p(noisy | x)``: a float (n, C) numpy array from ``.npy`` (``pyrobust train --save-probs``)
    or ``.csv``; ``n`` and ``C`` are checked when given (those of the labels at ``labels_path``).

    Raises:
        ValueError: not a readable ``.npy``/``.csv`` file (an ``.npz`` is named as such), or not float of shape
            ``(n, C)``; the message names ``path``.
    """
    import numpy as np

    probs = load_array(path, "probabilities")
    expected = (n if n is not None else "n", C if C is not None else "C")
    if probs.ndim != 2 or (n is not None and probs.shape[0] != n) or (C is not None and probs.shape[1] != C) \
            or not np.issubdtype(probs.dtype, np.floating):
        against = f" for the labels of {labels_path}" if labels_path else ""
        if n is not None and probs.ndim == 2 and probs.shape[0] != n and str(labels_path).endswith(".csv"):
            against += " (a header line of numbers in a .csv is read as data)"
        raise ValueError(f"{path}: expected float probabilities of shape ({expected[0]}, {expected[1]}){against}, "
                         f"got {probs.dtype} {probs.shape}")
    return probs


def load_noisy_labels(path: str):
    """The ``NoisyLabels`` file written by ``pyrobust corrupt``; a bad file is named in the error."""
    from pyrobust.experiment.labels import NoisyLabels

    with reading(path):
        return NoisyLabels.load(path)


#: The columns of the paper's CSV that every row must fill (``std`` is empty for a single run).
PAPER_FILLED = ["dataset", "model", "method", "noise", "N", "accuracy", "runs"]


def check_records(results: str) -> None:
    """Read the result records once, so that a bad one is reported by its file name.

    The records are read all at once (one pass, the usual case); when that fails, one by one, to name the
    culprit. A record's values of the wrong type (null where a number goes) raise TypeError in the
    loader, a user error here only. An error no single file causes (the same run recorded twice) is the
    loader's own, which names the files.
    """
    from pyrobust.experiment.records import load_records

    try:
        runs = load_records(results)
    except (*BAD_FILE, TypeError):
        root = Path(results)
        for path in sorted(root.rglob("*.json")) if root.is_dir() else [root]:
            with reading(path, TypeError):
                load_records(path)
        raise
    if Path(results).is_file() and runs.empty:
        raise ValueError(f"{results}: not a result record written by `pyrobust train` (no test_accuracy)")


def check_paper(paper_csv: str) -> None:
    """The paper's Table 2 CSV, read once to name it in any error; a row with an empty required field (a
    file cut short) is an error, not a cell without the paper's number."""
    from pyrobust.experiment.table import load_paper

    with reading(paper_csv):
        paper = load_paper(paper_csv)
        empty = paper[PAPER_FILLED].isna()
        if empty.any(axis=None):
            row = int(empty.any(axis=1).to_numpy().argmax())
            columns = [c for c in PAPER_FILLED if empty.iloc[row][c]]
            raise ValueError(f"line {row + 2} has no {', '.join(columns)} (is the file cut short?)")
