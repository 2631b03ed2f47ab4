"""The CSV layout of :func:`pyrobust.data.arrays.load_arrays`: one ``data.csv`` with a ``split`` column,
or a folder with ``train.csv`` and ``test.csv`` (columns in the module docstring of
:mod:`pyrobust.data.arrays`), read into the same named arrays as an ``.npz``.

:func:`csv_rows` also reads the noisy-label CSV of an image folder (:mod:`pyrobust.data.image_folder`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from pyrobust.data._common import DataFormatError


def read_csv(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A single CSV (``split`` column) or a folder with ``train.csv`` and ``test.csv``."""
    if path.is_file():
        header, rows = csv_rows(path)
        if "split" not in header:
            raise DataFormatError(f"{path}: no 'split' column (one CSV holds both splits; or give a folder "
                                  "with train.csv and test.csv)")
        split_col = header.index("split")
        parts: dict[str, list[tuple[int, list[str]]]] = {"train": [], "test": []}
        for line, row in rows:
            split = row[split_col].strip()
            if split not in parts:
                raise DataFormatError(f"{path}, line {line}: split {split!r} is neither 'train' nor 'test'")
            parts[split].append((line, row[:split_col] + row[split_col + 1:]))
        header = header[:split_col] + header[split_col + 1:]
        tables = {split: (path, header, part) for split, part in parts.items()}
    else:
        tables = {}
        for split in ("train", "test"):
            file = path / f"{split}.csv"
            if not file.is_file():
                raise DataFormatError(f"{path}: {split}.csv is missing (a CSV folder holds train.csv and test.csv)")
            header, rows = csv_rows(file)
            tables[split] = (file, header, rows)
        if [c for c in tables["train"][1] if c != "clean_label"] != tables["test"][1]:
            raise DataFormatError(f"{tables['test'][0]}: its columns {tables['test'][1]} differ from those of "
                                  f"{tables['train'][0]} {tables['train'][1]}")
    arrays: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for split, (file, header, rows) in tables.items():
        if "label" not in header:
            raise DataFormatError(f"{file}: no 'label' column")
        label_col = header.index("label")
        clean_col = header.index("clean_label") if "clean_label" in header else None
        features = [i for i, c in enumerate(header) if i not in (label_col, clean_col)]
        if not features:
            raise DataFormatError(f"{file}: no feature column (every column but split, label, clean_label)")
        if not rows:
            raise DataFormatError(f"{file}: no {split} rows")
        x = np.empty((len(rows), len(features)), dtype=np.float32)
        y = np.empty(len(rows), dtype=np.int64)
        clean = np.full(len(rows), -1, dtype=np.int64)
        for r, (line, row) in enumerate(rows):
            try:
                x[r] = [float(row[i]) for i in features]
            except ValueError:
                bad = next(header[i] for i in features if not _is_float(row[i]))
                raise DataFormatError(f"{file}, line {line}: column {bad!r} is not a number") from None
            y[r] = _csv_int(row[label_col], file, line, "label")
            if clean_col is not None and row[clean_col].strip():
                if split == "test":
                    raise DataFormatError(f"{file}, line {line}: a test row has a clean_label (test labels are "
                                          "taken as clean: put it in the label column)")
                clean[r] = _csv_int(row[clean_col], file, line, "clean_label")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
        sources[f"x_{split}"] = sources[f"y_{split}"] = str(file)
        if split == "train" and (known := np.flatnonzero(clean >= 0)).size:
            if known.size == len(clean):
                arrays["y_train_clean"] = clean
            else:
                arrays["clean_indices"], arrays["clean_labels"] = known, clean[known]
            for key in ("y_train_clean", "clean_indices", "clean_labels"):
                sources[key] = f"{file} [clean_label]"
    return arrays, sources


def csv_rows(file: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        with open(file, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [c.strip() for c in next(reader, [])]
            if not header:
                raise DataFormatError(f"{file}: empty (a header row is expected)")
            if len(set(header)) != len(header):
                raise DataFormatError(f"{file}: repeated column names in the header {header}")
            rows = []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    raise DataFormatError(f"{file}, line {reader.line_num}: {len(row)} fields, the header has "
                                          f"{len(header)}")
                rows.append((reader.line_num, row))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataFormatError(f"{file}: not a readable CSV ({type(err).__name__}: {err})") from err
    return header, rows


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_int(text: str, file: Path, line: int, column: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise DataFormatError(f"{file}, line {line}: {column} {text!r} is not an integer class index") from None


__all__ = ["csv_rows", "read_csv"]
