"""Table 2 as a tidy frame: our mean per cell, the caption's marks, the paper's number beside it.

The marks follow the caption of the paper's Table 2 (Patrini et al., CVPR 2017):

* **bold**: the highest mean of a column and every mean that is *not* statistically far from it, i.e.
  whose Welch's t-test against it (``scipy.stats.ttest_ind(equal_var=False)``) has ``p >= 0.05``; where a
  cell has a single run (the paper's CIFAR columns) the test is replaced by "within 0.5 points of the
  highest".
* ``*``: when the highest accuracy of a column is due to a correction with the ground-truth ``T`` (the
  catalogue's methods with ``transition == "true"``: ``backward``, ``forward``), the true-``T`` rows
  above every other row are starred (and bold), and the bold rule is applied again among the other rows
  ("we highlight the next highest accuracy as well"). Not in the no-noise columns, where the ground-truth
  ``T`` is the identity and gives those rows no advantage.
* ``†``: in a column without injected noise, an estimated-``T`` method (``backward_est``,
  ``forward_est``: ``transition == "estimated"``) beating its ``T = I`` counterpart (the estimator found
  some natural noise).

Means are compared at the precision they are printed with (one decimal), as a reader of the table would;
p-values are computed on the per-seed accuracies.

pandas and scipy are imported inside the functions that use them.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pyrobust.experiment.records import (
    CELL,
    COLUMN,
    dataset_info,
    dataset_order,
    method_info,
    method_order,
    network_order,
    noise_order,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ALPHA",
    "CSV_COLUMNS",
    "DECIMALS",
    "TOLERANCE",
    "best_cells",
    "load_paper",
    "summarize",
    "top_group",
]

#: Significance level of Welch's t-test (the caption's 5%).
ALPHA = 0.05
#: With a single run, rows within this many points of the highest are bold (the caption's 0.5).
TOLERANCE = 0.5
#: Decimals the table prints, and compares means at.
DECIMALS = 1

#: Columns of ``table2.csv``: ours (mean and sample std over seeds, number of runs, the caption's marks:
#: space-separated ``bold``, ``star``, ``dagger``), the training budget, and the paper's cell beside it.
CSV_COLUMNS = [
    *CELL,
    "mean",
    "std",
    "runs",
    "mark",
    "epochs",
    "paper_reference",
    "paper_mean",
    "paper_std",
    "paper_runs",
]
_PAPER_COLUMNS = {"dataset", "model", "method", "noise", "N", "accuracy", "std", "runs"}


# ------------------------------------------------------------------------------------------- bolding


def _rounded(value: float) -> float:
    return round(value, DECIMALS)


def top_group(samples: Mapping[str, Sequence[float]], alpha: float, tolerance: float) -> set[str]:
    """The highest mean and every row not statistically far from it (Welch), or within `tolerance`: the bold
    rule of Table 2's caption, shared by the estimator comparison."""
    from scipy.stats import ttest_ind

    means = {method: float(sum(values) / len(values)) for method, values in samples.items()}
    top = max(means, key=means.__getitem__)
    group = {top}
    for method, values in samples.items():
        if method == top:
            continue
        if min(len(values), len(samples[top])) < 2:  # no variance to test: the caption's 0.5-point rule
            close = round(_rounded(means[top]) - _rounded(means[method]), 6) <= tolerance
        else:
            with warnings.catch_warnings():  # scipy warns on (nearly) constant samples: nan or tiny p is right
                warnings.simplefilter("ignore", RuntimeWarning)
                p = float(ttest_ind(values, samples[top], equal_var=False).pvalue)
            close = math.isnan(p) or p >= alpha  # nan: both constant and equal
        if close:
            group.add(method)
    return group


def best_cells(
    samples: Mapping[str, Sequence[float]],
    *,
    noise: str = "symmetric",
    alpha: float = ALPHA,
    tolerance: float = TOLERANCE,
) -> dict[str, set[str]]:
    """The marks of one column of Table 2 by its caption's rules: method -> subset of ``{"bold", "star", "dagger"}``.

    * ``bold``: the highest mean and every mean whose Welch's t-test against it has ``p >= alpha``
      (with a single run in either cell: within `tolerance` points of it, at the printed precision).
    * ``star`` (and ``bold``): with injected noise (`noise` not ``"none"``), where the highest mean is a
      true-``T`` method's (the catalogue's ``transition == "true"``), the true-``T`` rows whose rounded
      mean is above every other row's; the bold rule is then applied among the other rows.
    * ``dagger``: without injected noise (`noise` ``"none"``), an estimated-``T`` method whose rounded
      mean beats its counterpart's (``forward_est`` over ``forward``, from the catalogue).

    Methods unknown to the registry compete as ordinary rows.

    Args:
        samples: per method name, its test accuracies (percent) over seeds in this column; methods with
            no accuracy are left out.
        noise: the column's noise kind (``"none"``, ``"symmetric"``, ``"asymmetric"``).
        alpha: significance level of Welch's t-test (the paper's 5%).
        tolerance: with a single run, rows within this many points of the highest are bold (0.5).

    Returns:
        A dict with every method of `samples` that has an accuracy as key (empty if none has).
    """
    samples = {method: [float(v) for v in values] for method, values in samples.items() if len(values)}
    marks: dict[str, set[str]] = {method: set() for method in samples}
    if not samples:
        return marks
    info = {method: method_info(method) for method in samples}
    true_T = {m for m, entry in info.items() if entry is not None and entry.transition == "true"}
    means = {method: sum(values) / len(values) for method, values in samples.items()}
    others = {m: v for m, v in samples.items() if m not in true_T}
    top = max(means, key=means.__getitem__)
    starred = []
    # Without injected noise the "ground-truth T" is the identity: those rows use no extra knowledge and
    # compete as ordinary rows (the paper has no * in its no-noise columns).
    if noise != "none" and top in true_T and others:
        best_other = max(_rounded(means[m]) for m in others)
        starred = [m for m in samples if m in true_T and _rounded(means[m]) > best_other]
    if starred:
        for method in starred:
            marks[method] |= {"star", "bold"}
        bold = top_group(others, alpha, tolerance)
    else:  # no true-T row stands above the rest (a tie at the printed precision included)
        bold = top_group(samples, alpha, tolerance)
    for method in bold:
        marks[method].add("bold")
    if noise == "none":
        for estimated, entry in info.items():
            if entry is None or entry.transition != "estimated" or entry.counterpart not in means:
                continue
            if _rounded(means[estimated]) > _rounded(means[entry.counterpart]):
                marks[estimated].add("dagger")
    return marks


# ------------------------------------------------------------------------------------------- table


def _sort_key(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` in Table 2's order: data sets, networks, noise kinds, methods of the catalogue, then N."""
    order = {
        "dataset": {d: i for i, d in enumerate(dataset_order())},
        "model": {m: i for i, m in enumerate(network_order())},
        "method": {m: i for i, m in enumerate(method_order())},
        "noise": {n: i for i, n in enumerate(noise_order())},
    }
    return frame.assign(
        **{f"_{key}": frame[key].map(ranks).fillna(len(ranks)) for key, ranks in order.items()}
    ).sort_values(["_dataset", "dataset", "_model", "model", "_noise", "N", "_method"])


def load_paper(paper_csv: str | os.PathLike) -> pd.DataFrame:
    """The paper's Table 2, read from CSV.

    Args:
        paper_csv: a CSV file with (at least) the columns ``dataset, model, method, noise, N, accuracy,
            std, runs``: one row per cell of the paper's table (``workflow/resources/table2-paper.csv``).

    Returns:
        Its frame, ``N`` as a float rounded to 6 decimals (to match :func:`load_records`).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a column is missing.
    """
    import pandas as pd

    paper = pd.read_csv(paper_csv)
    if not _PAPER_COLUMNS <= set(paper.columns):
        raise ValueError(f"{paper_csv}: expected columns {sorted(_PAPER_COLUMNS)}, got {list(paper.columns)}")
    return paper.assign(N=paper["N"].astype(float).round(6))


def summarize(runs: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 2 as a tidy frame: one row per cell, its marks by the caption's rules, the paper's value.

    Args:
        runs: one row per run, as :func:`~pyrobust.experiment.records.load_records` returns (columns
            ``dataset, model, method, noise, N, seed, test_accuracy, epochs``).
        paper: the paper's Table 2 (:func:`load_paper`), or None to leave the paper's columns empty. A
            data set is compared with its catalogue ``paper_reference`` (``mnist5k`` with the paper's
            ``mnist``).

    Returns:
        A frame with the columns :data:`CSV_COLUMNS`: the cell ``dataset, model, method, noise, N``;
        ``mean``, ``std`` (sample, ddof 1; NaN with one run) and ``runs`` over seeds; ``mark`` (the
        sorted, space-separated marks of :func:`best_cells` on the cell's column); ``epochs`` (the
        distinct epoch counts, ``/``-separated); ``paper_reference`` (``dataset/model`` of the paper's
        cell, or ``""``), ``paper_mean``, ``paper_std``, ``paper_runs`` (NaN / <NA> without one). Rows
        are in Table 2's order: data sets and networks as in the catalogue, then noise kinds
        (none, symmetric, asymmetric), N, and the methods' row order (built-in, then registered ones).
    """
    import pandas as pd

    if runs.empty:
        return pd.DataFrame(columns=CSV_COLUMNS)
    grouped = runs.groupby(CELL, sort=False)
    table = grouped["test_accuracy"].agg(mean="mean", std="std", runs="count").reset_index()
    table["epochs"] = grouped["epochs"].agg(
        lambda e: "/".join(str(v) for v in sorted(set(e.dropna().astype(int))))
    ).values
    marks: dict[tuple, set[str]] = {}
    for (dataset, model, noise, N), column in runs.groupby(COLUMN, sort=False):
        samples = column.groupby("method")["test_accuracy"].apply(list).to_dict()
        for method, mark in best_cells(samples, noise=noise).items():
            marks[(dataset, model, method, noise, N)] = mark
    table["mark"] = [
        " ".join(sorted(marks.get(tuple(row), set()))) for row in table[CELL].itertuples(index=False)
    ]
    table["paper_reference"] = ""
    for column in ("paper_mean", "paper_std", "paper_runs"):
        table[column] = math.nan
    if paper is not None:
        references = {d: _paper_reference(d) for d in table["dataset"].unique()}
        reference = table["dataset"].map(references)
        keyed = paper.set_index(CELL)
        for i, key in enumerate(zip(reference, table["model"], table["method"], table["noise"], table["N"])):
            if key in keyed.index:
                row = keyed.loc[key]
                table.loc[i, ["paper_mean", "paper_std", "paper_runs"]] = [
                    row["accuracy"],
                    row["std"],
                    row["runs"],
                ]
                table.loc[i, "paper_reference"] = f"{key[0]}/{key[1]}"
    table["paper_runs"] = table["paper_runs"].astype("Int64")
    return _sort_key(table)[CSV_COLUMNS].reset_index(drop=True)


def _paper_reference(dataset: str) -> str:
    """The paper's data set a data set is compared with: its catalogue ``paper_reference``, else itself."""
    info = dataset_info(dataset)
    return dataset if info is None or not info.paper_reference else info.paper_reference
