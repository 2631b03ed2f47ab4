"""The estimator comparison: one row per (data set, network, noise, N, estimator of T) over seeds.

Each estimated-T record holds the ``T_hat`` its method trained with and that estimate's error against the
true ``T`` (:func:`pyrobust.experiment.run.train_methods`); a method that learns T (T-Revision, VolMinNet)
holds the T it ended with. Here they are grouped by estimator: the error of ``T_hat`` and the test accuracy
of the forward and the backward correction trained with it (for a method that learns T, its own accuracy
is its ``forward_accuracy``). Written as ``reports/estimators.csv`` and as a section of ``table2.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyrobust.experiment.records import dataset_label, method_info, network_label, noise_label
from pyrobust.experiment.table import ALPHA, TOLERANCE, top_group

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ESTIMATOR_COLUMNS", "estimator_label", "estimator_markdown", "estimator_of", "estimator_table"]

_KEY = ["dataset", "model", "noise", "N", "estimator"]
_MEASURES = ("mae", "max_row_l1", "forward_accuracy", "backward_accuracy")
#: Columns of ``estimators.csv``: each measure is a mean over seeds with its sample std (``_std``), ``runs``
#: the number of seeds, ``mark`` "bold" for the best ``forward_accuracy`` of a column by Table 2's rule.
ESTIMATOR_COLUMNS = [
    *_KEY, "label", *(c for m in _MEASURES for c in (m, f"{m}_std")), "runs", "mark",
]


def estimator_of(method: str, dataset: str) -> tuple[str, str] | None:
    """``(estimator, kind)`` of a method's record: kind ``"forward"``, ``"backward"`` or ``"learned"``; None
    for a method that uses no estimate. ``forward_est`` is the data set's own estimator (the paper's)."""
    info = method_info(method)
    if info is None:
        return None
    if info.learns_T:
        return info.name, "learned"
    if info.transition != "estimated" or info.counterpart not in ("forward", "backward"):
        return None
    if info.estimator is not None:
        return info.estimator, info.counterpart
    from pyrobust.registry import get_dataset

    return get_dataset(dataset).estimator, info.counterpart


def estimator_label(estimator: str) -> str:
    """An estimator's label in reports (the registry's), or a learning method's ``"<label> (learns T)"``."""
    from pyrobust.registry import ESTIMATORS, get_estimator

    if estimator in ESTIMATORS:
        return get_estimator(estimator).label
    info = method_info(estimator)
    return estimator if info is None else f"{info.label} (learns T)"


def estimator_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The estimator comparison from the runs of :func:`pyrobust.experiment.records.load_records`.

    Returns:
        A frame with :data:`ESTIMATOR_COLUMNS`, one row per (dataset, model, noise, N, estimator) with an
        estimate, in the order of the runs; NaN where a measure has no run (e.g. no backward correction).
    """
    import numpy as np
    import pandas as pd

    rows: dict[tuple, dict[str, Any]] = {}
    for run in runs.itertuples(index=False):
        found = estimator_of(run.method, run.dataset)
        if found is None or run.estimation_error is None:
            continue
        estimator, kind = found
        key = (run.dataset, run.model, run.noise, run.N, estimator)
        row = rows.setdefault(key, {"errors": {}, "forward_accuracy": [], "backward_accuracy": []})
        row["errors"].setdefault(run.seed, run.estimation_error)  # one estimate per seed, whichever record
        row["backward_accuracy" if kind == "backward" else "forward_accuracy"].append(run.test_accuracy)

    def stats(values: list[float]) -> tuple[float, float]:
        """Mean and sample std (0 for one value, NaN for none)."""
        if not values:
            return float("nan"), float("nan")
        return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    out = []
    for key, row in rows.items():
        entry = dict(zip(_KEY, key))
        entry["label"] = estimator_label(key[-1])
        errors = list(row["errors"].values())
        for measure in ("mae", "max_row_l1"):
            entry[measure], entry[f"{measure}_std"] = stats([float(e[measure]) for e in errors])
        for measure in ("forward_accuracy", "backward_accuracy"):
            entry[measure], entry[f"{measure}_std"] = stats(row[measure])
        entry["runs"] = len(errors)
        entry["_samples"] = row["forward_accuracy"]
        out.append(entry)
    table = pd.DataFrame(out, columns=[*ESTIMATOR_COLUMNS[:-1], "_samples"])
    table["mark"] = ""
    for _, column in table.groupby(["dataset", "model", "noise", "N"], sort=False):
        samples = {i: s for i, s in column["_samples"].items() if len(s)}
        if samples:
            for i in top_group(samples, ALPHA, TOLERANCE):
                table.loc[i, "mark"] = "bold"
    return table.drop(columns="_samples")[ESTIMATOR_COLUMNS]


def estimator_markdown(table: pd.DataFrame) -> list[str]:
    """The estimator comparison as a Markdown section (lines): per network, one row per estimator and one
    column per noise setting, ``forward accuracy (MAE of T_hat)``, the best forward accuracy bolded."""
    if table.empty:
        return []
    lines = [
        "## Estimators of T",
        "",
        "Forward-corrected test accuracy (%, mean ± std over seeds) with each estimator's T̂, and in brackets "
        "the mean absolute error of T̂ against the true T; a method that learns T shows its own accuracy and "
        "the T it ends with. Bold: the best, and every row not far from it (Welch's t-test, p ≥ 0.05). "
        "`reports/estimators.csv` adds the largest row error (L1) and the backward correction.",
        "",
    ]
    for (dataset, model), block in table.groupby(["dataset", "model"], sort=False):
        columns = list(dict.fromkeys(zip(block["noise"], block["N"])))
        lines += [f"### {dataset_label(dataset)}, {network_label(model)}", ""]
        lines.append("| T̂ from | " + " | ".join(f"{noise_label(n)} N={N:g}" for n, N in columns) + " |")
        lines.append("|---|" + "---|" * len(columns))
        for estimator, rows in block.groupby("estimator", sort=False):
            cells = []
            for noise, N in columns:
                match = rows[(rows["noise"] == noise) & (rows["N"] == N)]
                if match.empty:
                    cells.append("")
                    continue
                r = match.iloc[0]
                accuracy = f"{r.forward_accuracy:.1f} ± {r.forward_accuracy_std:.1f}"
                if r["mark"] == "bold":
                    accuracy = f"**{accuracy}**"
                cells.append(f"{accuracy} ({r.mae:.3f})")
            lines.append(f"| {rows['label'].iloc[0]} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines
