"""The input files of the ``pyrobust`` subcommands, read (or checked) once so that a bad one is named:
probabilities, noisy labels, result records and the paper's Table 2 CSV.
"""

from __future__ import annotations

from pathlib import Path

from pyrobust.cli.errors import BAD_FILE, reading

__all__ = ["check_paper", "check_records", "load_noisy_labels", "load_probs"]


def load_probs(path: str, n: int, C: int, labels_path: str):
    """The softmax written by ``pyrobust train --save-probs``: a float (n, C) numpy array.

    Raises:
        ValueError: not a readable ``.npy`` file (an ``.npz`` is named as such), or not float of shape
            ``(n, C)``; the message names ``path``.
    """
    import numpy as np

    what = "the .npy array written by `pyrobust train --save-probs`"
    with reading(path):
        with open(path, "rb") as file:
            magic = file.read(6)
        if magic != b"\x93NUMPY":
            kind = "an .npz archive" if magic.startswith(b"PK\x03\x04") else "not a .npy file"
            raise ValueError(f"{kind}; expected {what}")
        probs = np.load(path, allow_pickle=False)
    if probs.ndim != 2 or probs.shape != (n, C) or not np.issubdtype(probs.dtype, np.floating):
        raise ValueError(f"{path}: expected float probabilities of shape ({n}, {C}) for {labels_path}, got "
                         f"{probs.dtype} {probs.shape}")
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
