"""Table 3 (Clothing1M) from the records of its runs, beside the paper's numbers: ``table3.csv``, ``table3.md``.

Each Clothing1M run (``python -m pyrobust.experiment.clothing1m train <run>``, the workflow's
``clothing1m_train`` rule) writes one record with its Table 3 row (``table3_row``, from the run's ``row``
in ``config/clothing1m.yaml``), its training set, its initialisation and the source of its ``T``.
:func:`table3` joins them with the paper's rows (``workflow/resources/table3-paper.csv``) by that row
number: a row of the paper we did not run keeps its number alone (the AlexNet rows #1-#3 are other papers'
and are not rerun), a run of no row of the paper (``forward_est_1m``: T estimated from #4's softmax) comes
after the paper's rows, with no paper number.

pandas is imported inside the functions, so importing this module stays cheap (and torch-free).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyrobust._io import write_text
from pyrobust.catalog import NETWORKS
from pyrobust.experiment.records import method_label

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CSV_COLUMNS", "PAPER_COLUMNS", "load_paper_table3", "markdown_table3", "table3", "write_table3"]

#: The columns of ``table3.csv``: the paper's row (or empty), our run (or empty), what was trained, our test
#: accuracy (percent, clean 10k) and its budget, the paper's accuracy and where the paper's number comes from.
CSV_COLUMNS = [
    "row", "run", "model", "method", "init", "training", "T", "accuracy", "best_epoch", "epochs",
    "world_size", "wall_time_s", "paper_accuracy", "reference",
]
#: The columns the paper's Table 3 CSV must have.
PAPER_COLUMNS = ("model", "method", "init", "training", "T", "accuracy", "row", "reference")

#: Networks of Table 3 that are not Table 2's (``pyrobust.catalog.NETWORKS`` labels the others).
_NETWORKS = {"resnet50": "ResNet-50", "alexnet": "AlexNet"}
#: The keys a Clothing1M record must hold to be a row of Table 3.
_RECORD_KEYS = ("dataset", "model", "method", "test_accuracy", "training_set", "init")


def load_paper_table3(path: str | os.PathLike) -> pd.DataFrame:
    """The paper's Table 3 from CSV (:data:`PAPER_COLUMNS`; one line per row of the paper, ``row`` its #).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a column is missing, or a row number is not an integer or repeats.
    """
    import pandas as pd

    paper = pd.read_csv(path, keep_default_na=False, na_values={"accuracy": [""]})
    missing = [c for c in PAPER_COLUMNS if c not in paper.columns]
    if missing:
        raise ValueError(f"{path}: the paper's Table 3 lacks the columns {missing} (has {list(paper.columns)})")
    rows = pd.to_numeric(paper["row"], errors="coerce")
    if rows.isna().any() or (rows % 1 != 0).any() or rows.duplicated().any():
        raise ValueError(f"{path}: column row must hold distinct integers, got {paper['row'].tolist()}")
    return paper.assign(row=rows.astype(int))


def _load_record(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        if isinstance(err, FileNotFoundError):
            raise FileNotFoundError(f"{path}: no such record (train its run first)") from None
        raise ValueError(f"{path}: not a JSON record of a Clothing1M run ({err})") from None
    if not isinstance(record, dict) or any(key not in record for key in _RECORD_KEYS):
        raise ValueError(f"{path}: not the record of a Clothing1M run (needs the keys {', '.join(_RECORD_KEYS)})")
    if record["dataset"] != "clothing1m":
        raise ValueError(f"{path}: a record of {record['dataset']}, not of Clothing1M")
    return record


def table3(
    records: Mapping[str, str | os.PathLike | Mapping[str, Any]],
    paper: pd.DataFrame | None = None,
    *,
    init_from: Mapping[str, str | None] | None = None,
) -> pd.DataFrame:
    """Table 3 as a frame with the columns :data:`CSV_COLUMNS`, the paper's rows first, in its order.

    Args:
        records: run name -> its record (a file written by the run, or the record itself).
        paper: the paper's Table 3 (:func:`load_paper_table3`), or None for our runs alone.
        init_from: run name -> the run whose weights it starts from (``init_from`` of the runs file), to
            print that run's row (``#6``) as its initialisation, as the paper does.

    Returns:
        One line per row of the paper (ours beside it where a run has that ``table3_row``), then one per
        run of no row. ``init`` is ``ImageNet``, ``scratch`` or ``#<row>`` (else the run's name) of the
        run it starts from; ``T`` where the correction's ``T`` comes from (``clean 50k``, ``estimated
        (percentile)``) or empty.

    Raises:
        ValueError: two runs claim the same row, or a run's method or training set is not that of the
            paper's row it claims (the message names the run); a bad record (named).
    """
    import pandas as pd

    loaded = {run: dict(r) if isinstance(r, Mapping) else _load_record(r) for run, r in records.items()}
    rows = {run: record.get("table3_row") for run, record in loaded.items()}
    init_from = dict(init_from or {})
    paper_rows = {} if paper is None else {int(p["row"]): p for p in paper.to_dict("records")}

    def init_label(run: str, record: dict[str, Any]) -> str:
        source = init_from.get(run)
        if source is not None:
            return f"#{rows[source]}" if rows.get(source) is not None else source
        return str(record["init"])

    def ours(run: str) -> dict[str, Any]:
        record = loaded[run]
        return {
            "run": run, "model": record["model"], "method": record["method"], "init": init_label(run, record),
            "training": record["training_set"], "T": record.get("T_source") or "",
            "accuracy": float(record["test_accuracy"]), "best_epoch": record.get("best_epoch"),
            "epochs": record.get("epochs"), "world_size": record.get("world_size"),
            "wall_time_s": record.get("wall_time_s"),
        }

    by_row: dict[int, str] = {}
    for run, row in rows.items():
        if row is None:
            continue
        if int(row) in by_row:
            raise ValueError(f"runs {by_row[int(row)]!r} and {run!r} both claim row #{row} of Table 3")
        by_row[int(row)] = run
        expected = paper_rows.get(int(row))
        if expected is not None:
            record = loaded[run]
            if (record["method"], record["training_set"]) != (expected["method"], expected["training"]):
                raise ValueError(
                    f"run {run!r} claims row #{row} of Table 3 ({expected['method']} on {expected['training']}) "
                    f"but trained {record['method']} on {record['training_set']}"
                )
    lines = []
    for row, p in sorted(paper_rows.items()):
        line = {"row": row, "model": p["model"], "method": p["method"], "init": p["init"],
                "training": p["training"], "T": p["T"], "paper_accuracy": p["accuracy"], "reference": p["reference"]}
        if row in by_row:
            line.update(ours(by_row.pop(row)))
        lines.append(line)
    for run in loaded:  # the runs of rows the paper has not (in the order given), then of no row
        if rows[run] is not None and int(rows[run]) in by_row:
            lines.append({"row": int(rows[run]), **ours(run)})
    lines += [ours(run) for run in loaded if rows[run] is None]
    table = pd.DataFrame(lines, columns=CSV_COLUMNS)
    table["row"] = table["row"].astype("Int64")
    for column in ("best_epoch", "epochs", "world_size"):
        table[column] = pd.to_numeric(table[column]).astype("Int64")
    for column in ("accuracy", "wall_time_s", "paper_accuracy"):
        table[column] = pd.to_numeric(table[column]).astype(float)
    return table


def _network(name: str) -> str:
    return _NETWORKS.get(name, NETWORKS.get(name, name))


def _cell(value: Any) -> str:
    """A cell of the Markdown: empty for a missing value (None, NaN, pandas' NA)."""
    import pandas as pd

    return "" if value is None or pd.isna(value) else str(value)


def _number(value: Any) -> str:
    return _cell(value) and f"{float(value):.2f}"


def markdown_table3(table: pd.DataFrame) -> str:
    """The text of ``table3.md``: the paper's layout (#, network, loss, init, training, T), our accuracy and
    the paper's side by side, then the budget of our runs."""
    lines = [
        "# Table 3: Clothing1M test accuracy (%)",
        "",
        "Reproduction of Table 3 of Patrini et al., *Making Deep Neural Networks Robust to Label Noise: a Loss "
        "Correction Approach* (CVPR 2017), section 5.3. Ours: accuracy on the clean 10k test images of the "
        "epoch with the lowest cross-entropy on the clean 14k validation images. The AlexNet rows (#1-#3) are "
        "other papers' and are not rerun; rows without a # are runs the paper has not (T estimated from #4's "
        "softmax).",
        "",
        "| # | network | loss | init | training | T | ours | paper |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for line in table.itertuples(index=False):
        cells = [_cell(line.row), _network(line.model), method_label(line.method), _cell(line.init),
                 _cell(line.training), _cell(line.T), _number(line.accuracy) or "—", _number(line.paper_accuracy)]
        lines.append("| " + " | ".join(cells) + " |")
    ran = table[table["run"].notna()]
    lines += ["", "## Budget", ""]
    if ran.empty:
        return "\n".join(lines + ["No run has a record yet.", ""])
    lines += ["| run | epochs | best epoch | processes | training time (s) |", "|---|---|---|---|---|"]
    for line in ran.itertuples(index=False):
        time = _cell(line.wall_time_s) and f"{line.wall_time_s:.0f}"
        cells = [_cell(line.run), _cell(line.epochs), _cell(line.best_epoch), _cell(line.world_size), time]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


def write_table3(
    records: Mapping[str, str | os.PathLike],
    csv: str | os.PathLike,
    markdown: str | os.PathLike,
    *,
    paper_csv: str | os.PathLike | None = None,
    init_from: Mapping[str, str | None] | None = None,
) -> dict[str, Path]:
    """Write ``table3.csv`` (:func:`table3`, floats at 6 significant digits) and ``table3.md``
    (:func:`markdown_table3`) from the records of the runs (run name -> record file), atomically.

    Raises:
        FileNotFoundError, ValueError: as :func:`table3` and :func:`load_paper_table3`, before anything is
            written.
        OSError: a file cannot be written.
    """
    paper = load_paper_table3(paper_csv) if paper_csv is not None else None
    table = table3(records, paper, init_from=init_from)
    return {
        "csv": write_text(csv, table.to_csv(index=False, float_format="%.6g")),
        "markdown": write_text(markdown, markdown_table3(table)),
    }
