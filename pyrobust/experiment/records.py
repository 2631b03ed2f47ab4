"""The run records behind Table 2: loading them, and what their names mean in the catalogue.

Every training run writes one record ``<method>.json`` (see :mod:`pyrobust.train`): a JSON object with at
least :data:`RECORD_KEYS`. :func:`load_records` reads them back into one frame. The names a record holds
(data set, network, method, noise kind) are looked up in the one catalogue (:mod:`pyrobust.catalog` and
the registries of :mod:`pyrobust.registry`) for their labels, their order in the table and their role in
the caption's rules; a method registered by a plug-in is a row like any built-in one.

pandas is imported inside :func:`load_records`, so importing this module stays cheap (and torch-free).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyrobust.catalog import NETWORKS, NOISE_KINDS
from pyrobust.entries import DatasetInfo, Method
from pyrobust.registry import get_dataset, get_method, list_datasets, list_methods

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CELL",
    "COLUMN",
    "RECORD_KEYS",
    "dataset_info",
    "dataset_label",
    "dataset_order",
    "load_records",
    "method_info",
    "method_label",
    "method_order",
    "network_label",
    "network_order",
    "noise_label",
    "noise_order",
    "stale_settings",
    "true_T_methods",
]

#: The keys every result record must hold.
RECORD_KEYS = ("dataset", "model", "method", "noise", "N", "seed", "test_accuracy")
#: The keys of one cell of Table 2 (its seeds are averaged), and of one column (a block's noise setting).
CELL = ["dataset", "model", "method", "noise", "N"]
COLUMN = ["dataset", "model", "noise", "N"]
#: The columns of :func:`load_records`'s frame: the required keys, then what the reports also print.
_RUN_COLUMNS = [
    *RECORD_KEYS, "epochs", "wall_time_s", "device", "threads", "T", "T_hat", "estimation_error", "path",
]


# ----------------------------------------------------------------------------------------- catalogue


def method_info(name: str) -> Method | None:
    """The registered :class:`~pyrobust.entries.Method` called `name` (its plug-in loaded), or None."""
    try:
        return get_method(name)
    except ValueError:
        return None


def dataset_info(name: str) -> DatasetInfo | None:
    """The registered :class:`~pyrobust.entries.DatasetInfo` called `name`, or None."""
    try:
        return get_dataset(name)
    except ValueError:
        return None


def method_label(name: str) -> str:
    """A method's row label in Table 2 (``forward_est`` -> ``forward T̂``); `name` itself if unknown."""
    method = method_info(name)
    return name if method is None else method.label


def dataset_label(name: str) -> str:
    """A data set's label (``mnist5k`` -> ``MNIST-5k``); `name` itself if unknown."""
    dataset = dataset_info(name)
    return name if dataset is None else dataset.label


def network_label(name: str) -> str:
    """A network's label (``fc`` -> ``fully connected``); `name` itself if unknown."""
    return NETWORKS.get(name, name)


def noise_label(kind: str) -> str:
    """A noise kind's column label in the paper (``symmetric`` -> ``SYMM.``).

    Raises:
        KeyError: `kind` is not one of :data:`pyrobust.catalog.NOISE_KINDS`.
    """
    return NOISE_KINDS[kind]


def method_order() -> list[str]:
    """Table 2's rows: the built-in methods in the paper's order, then registered or plugged-in ones."""
    return list_methods()


def true_T_methods() -> list[str]:
    """The methods corrected with the ground-truth ``T`` (``transition == "true"``: the ``*`` rows), in row order."""
    return [name for name in method_order() if (method := method_info(name)) and method.transition == "true"]


def dataset_order() -> list[str]:
    """Table 2's blocks: the built-in data sets in the paper's order, then registered ones."""
    return list_datasets()


def network_order() -> list[str]:
    """The networks in the paper's order (a data set's block lists its networks in this order)."""
    return list(NETWORKS)


def noise_order() -> list[str]:
    """A block's columns by noise kind: ``none``, ``symmetric``, ``asymmetric``."""
    return list(NOISE_KINDS)


# ----------------------------------------------------------------------------------------- records


def _record_paths(results: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    if isinstance(results, (str, os.PathLike)):
        results = [results]
    paths: list[Path] = []
    for item in map(Path, results):
        if item.is_dir():
            paths.extend(sorted(item.rglob("*.json")))
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such result file or directory")
    return paths


def _same(value: Any, wanted: Any) -> bool:
    """Whether a record's value is the one asked for: numbers by value (``1 == 1.0``, ``0.6`` within
    rounding), lists and tuples item by item (JSON turns tuples into lists), mappings key by key."""
    if isinstance(wanted, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    if isinstance(wanted, (int, float)) and isinstance(value, (int, float)):
        return math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(wanted, (list, tuple)) and isinstance(value, (list, tuple)):
        return len(value) == len(wanted) and all(_same(v, w) for v, w in zip(value, wanted))
    if isinstance(wanted, Mapping) and isinstance(value, Mapping):
        return value.keys() == wanted.keys() and all(_same(value[k], wanted[k]) for k in wanted)
    return value == wanted


def stale_settings(record: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """The settings in which `record` differs from `expected`, as ``key: recorded ..., asked for ...``.

    Args:
        record: a result record (a JSON object written by ``pyrobust train``).
        expected: settings the run was asked for: top-level keys of the record (``dataset``, ``model``,
            ``method``, ``noise``, ``N``, ``seed``, ``epochs``, ...) and, under ``config``, keys of the
            record's ``config`` block (the trainer's settings: ``device``, ``lr``, ...). A key the
            record lacks counts as different.

    Returns:
        One line per differing setting (empty when the record is the run asked for).
    """
    missing = object()
    differences = []
    for key, wanted in expected.items():
        if key == "config" and isinstance(wanted, Mapping):
            block = record.get("config")
            block = block if isinstance(block, Mapping) else {}
            pairs = [(f"config.{k}", block.get(k, missing), w) for k, w in wanted.items()]
        else:
            pairs = [(key, record.get(key, missing), wanted)]
        for name, value, want in pairs:
            if value is missing or not _same(value, want):
                shown = "nothing" if value is missing else repr(value)
                differences.append(f"{name}: recorded {shown}, asked for {want!r}")
    return differences


def _key(path: str | os.PathLike) -> str:
    return os.path.normpath(os.fspath(path))


def load_records(
    results: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    expected: Mapping[str | os.PathLike, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """One row per training run, from its result record.

    Args:
        results: a directory searched recursively for ``*.json`` (in sorted order), a record file, or an
            iterable of both. JSON files that are not result records (no ``test_accuracy``: ``T_hat.json``,
            data probes) are skipped.
        expected: the runs asked for, e.g. by the workflow: per record file, the settings it must have
            been trained with (see :func:`stale_settings`). Then every record read must be one of them,
            with those settings, and every one of them must be read: a record left over from other
            settings (other epochs, another network, ...) is an error, never a row to average.

    Returns:
        A frame with the columns ``dataset, model, method, noise, N, seed, test_accuracy`` (the required
        :data:`RECORD_KEYS`; ``N`` rounded to 6 decimals, ``test_accuracy`` a float, percent), then
        ``epochs, wall_time_s, device, threads, T, T_hat, estimation_error`` (None where a record lacks them) and ``path``
        (the record's file). Empty (with these columns) when there is no record.

    Raises:
        FileNotFoundError: an item of `results`, or a record of `expected`, does not exist.
        ValueError: naming the file, a record that is not valid JSON, lacks a required key, has a
            ``test_accuracy`` outside [0, 100] or a method that is not registered (neither built in, nor
            registered with ``pyrobust.register_method``, nor a ``pyrobust.methods`` entry point), is not
            one of `expected` or differs from its settings there; or two records of the same run
            (dataset, model, method, noise, N, seed).
    """
    import pandas as pd

    wanted = None if expected is None else {_key(path): settings for path, settings in expected.items()}
    rows = []
    for path in _record_paths(results):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(record, dict) or "test_accuracy" not in record:
            if wanted is not None and _key(path) in wanted:
                raise ValueError(f"{path}: not a result record (no test_accuracy)")
            continue
        missing = [key for key in RECORD_KEYS if key not in record]
        if missing:
            raise ValueError(f"{path}: result record lacks {', '.join(missing)}")
        accuracy = float(record["test_accuracy"])
        if not 0.0 <= accuracy <= 100.0:
            raise ValueError(f"{path}: test_accuracy {accuracy} is not a percentage in [0, 100]")
        if method_info(record["method"]) is None:
            raise ValueError(f"{path}: unknown method {record['method']!r}")
        if wanted is not None:
            if _key(path) not in wanted:
                raise ValueError(f"{path}: not one of the runs asked for")
            differences = stale_settings(record, wanted.pop(_key(path)))
            if differences:
                raise ValueError(
                    f"{path}: trained with other settings than those asked for ({'; '.join(differences)}): "
                    "a stale record is never averaged into the table; rerun its training or delete it"
                )
        rows.append(
            {
                **{key: record[key] for key in RECORD_KEYS},
                "N": round(float(record["N"]), 6),
                "test_accuracy": accuracy,
                "epochs": record.get("epochs"),
                "wall_time_s": record.get("wall_time_s"),
                "device": record.get("device"),
                "threads": record.get("threads"),
                "T": record.get("T"),
                "T_hat": record.get("T_hat"),
                "estimation_error": record.get("estimation_error"),
                "path": str(path),
            }
        )
    if wanted:
        absent = ", ".join(sorted(wanted)[:4])
        raise FileNotFoundError(f"{len(wanted)} record(s) asked for are not among the results: {absent}")
    runs = pd.DataFrame(rows, columns=_RUN_COLUMNS)
    duplicated = runs.duplicated(CELL + ["seed"], keep=False)
    if duplicated.any():
        paths = ", ".join(runs.loc[duplicated, "path"].head(4))
        raise ValueError(f"the same run (dataset, model, method, noise, N, seed) is recorded twice: {paths}")
    return runs
