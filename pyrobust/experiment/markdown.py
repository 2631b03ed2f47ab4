"""``table2.md``: Table 2 in the paper's layout, one block per (data set, network), and its budget.

Each cell prints our mean ± sample standard deviation over seeds (one number for a single run), with the
marks of the paper's Table 2 caption (:func:`pyrobust.experiment.table.best_cells`): bold, ``\\*`` for a
true-``T`` row above all others, ``†`` for an estimated-``T`` row beating its ``T = I`` counterpart without
injected noise; then the paper's number in parentheses. Labels and row order come from the catalogue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyrobust.catalog import HUMAN_NOISE
from pyrobust.experiment.records import (
    dataset_label,
    method_label,
    method_order,
    network_label,
    noise_label,
    true_T_methods,
)
from pyrobust.experiment.table import ALPHA, DECIMALS, TOLERANCE

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["cell_text", "format_N", "markdown_table"]

_TITLE = "# Table 2: average test accuracy (%) with loss correction and its competitors"
_INTRODUCTION = (
    "Reproduction of Table 2 of Patrini et al., *Making Deep Neural Networks Robust to Label Noise: a "
    "Loss Correction Approach* (CVPR 2017). Each cell: mean ± sample standard deviation of the clean "
    "test accuracy over the seeds (a single number where there is one run), then the paper's number in "
    "parentheses."
)


def _caption() -> str:
    """The caption's rules, as :func:`pyrobust.experiment.table.best_cells` applies them."""
    true_T = [method_label(name) for name in true_T_methods()]
    true_T_text = " or ".join([", ".join(true_T[:-1]), true_T[-1]] if len(true_T) > 1 else true_T)
    return (
        "Bold: the highest mean of a column and every mean not statistically far from it (Welch's t-test, "
        f"p ≥ {ALPHA:g}); with one run, every mean within {TOLERANCE:g} points of the highest. "
        f"\\*: the highest accuracy is due to {true_T_text} with the ground-truth T (injected noise "
        "only); those rows (above all others) are starred and the best of the remaining rows is bolded as "
        "well. "
        "†: no injected noise, and the correction with T̂ beats the one with T = I (natural noise found). "
        "Means are compared at the printed precision."
    )


def format_N(N: float) -> str:
    """A noise level as printed in headers and titles: ``0.2``, ``0.6`` (``%g``)."""
    return f"{N:g}"


def cell_text(row: Any) -> str:
    """One cell of the Markdown table, e.g. ``**97.2 ± 0.2**\\* (97.3)``.

    Args:
        row: a row of :func:`pyrobust.experiment.table.summarize` (attributes ``mean``, ``std``, ``runs``,
            ``mark``, ``paper_mean``).

    Returns:
        The mean at :data:`~pyrobust.experiment.table.DECIMALS` decimals, ``± std`` with more than one
        run; in bold (``**...**``) if marked ``bold``; then ``\\*`` if ``star`` and ``†`` if ``dagger`` (the
        caption's marks); then the paper's mean in parentheses where there is one.
    """
    value = f"{row.mean:.{DECIMALS}f}"
    if row.runs > 1:
        value += f" ± {row.std:.{DECIMALS}f}"
    marks = set(row.mark.split())
    if "bold" in marks:
        value = f"**{value}**"
    if "star" in marks:
        value += "\\*"
    if "dagger" in marks:
        value += "†"
    if not math.isnan(row.paper_mean):
        value += f" ({row.paper_mean:.{DECIMALS}f})"
    return value


def _block(dataset: str, model: str, block: pd.DataFrame) -> list[str]:
    """The lines of one (data set, network) block: its title, its paper-reference note, its table."""
    lines = [f"## {dataset_label(dataset)}, {network_label(model)}", ""]
    references = sorted(set(block["paper_reference"]) - {""})
    for reference in references:
        ref_dataset, ref_model = reference.split("/")
        if ref_dataset != dataset:
            lines += [
                f"The paper has no {dataset_label(dataset)} column: the numbers in "
                f"parentheses are the paper's {dataset_label(ref_dataset)}, "
                f"{network_label(ref_model)} (60,000 training digits), for comparison "
                "only.",
                "",
            ]
    columns = list(block[["noise", "N"]].drop_duplicates().itertuples(index=False))
    # (human noise, CIFAR-N's labels as they are, has no level: its N is a placeholder 0)
    header = [noise_label(c.noise) + ("" if c.noise == "none" or c.noise in HUMAN_NOISE else f" N={format_N(c.N)}")
              for c in columns]
    lines += ["| | " + " | ".join(header) + " |", "|---|" + "---|" * len(columns)]
    cells = {(row.method, row.noise, row.N): row for row in block.itertuples(index=False)}
    present = set(block["method"])
    for method in [m for m in method_order() if m in present]:
        row = [method_label(method)]
        for c in columns:
            cell = cells.get((method, c.noise, c.N))
            row.append("" if cell is None else cell_text(cell))
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return lines


def _budget(runs: pd.DataFrame) -> list[str]:
    """The budget section: per (data set, network), epochs, seeds, runs, time, devices, threads."""
    lines = ["## Budget", ""]
    if runs.empty:
        return lines + ["No result records were found.", ""]
    lines += [
        "| data set | network | epochs | seeds | runs | training time (s, summed) | device | threads |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (dataset, model), block in runs.groupby(["dataset", "model"], sort=False):
        epochs = "/".join(str(int(e)) for e in sorted(set(block["epochs"].dropna())))
        seeds = ", ".join(str(s) for s in sorted(set(block["seed"])))
        devices = ", ".join(sorted(set(block["device"].dropna().astype(str))))
        threads = ", ".join(str(int(t)) for t in sorted(set(block["threads"].dropna())))
        lines.append(
            f"| {dataset_label(dataset)} | {network_label(model)} | {epochs} | "
            f"{seeds} | {len(block)} | {block['wall_time_s'].sum():.0f} | {devices} | {threads} |"
        )
    return lines + [""]


def markdown_table(table: pd.DataFrame, runs: pd.DataFrame, missing: Sequence[str] = ()) -> str:
    """The text of ``table2.md``.

    Args:
        table: Table 2 as :func:`pyrobust.experiment.table.summarize` returns it (columns
            :data:`~pyrobust.experiment.table.CSV_COLUMNS`, in Table 2's order).
        runs: the runs as :func:`pyrobust.experiment.records.load_records` returns them (columns
            ``dataset, model, seed, epochs, wall_time_s, device, threads``), for the budget section.
        missing: names of data sets left out (their files are absent), listed in a last section.

    Returns:
        The title, an introduction and the caption's rules (bold: Welch's t-test at
        :data:`~pyrobust.experiment.table.ALPHA`, or within :data:`~pyrobust.experiment.table.TOLERANCE`
        points with one run; ``\\*``; ``†``); one section per (data set, network) with a table whose
        columns are its noise settings (``NO NOISE``, ``SYMM. N=...``, ``ASYMM. N=...``) and rows its
        methods in the catalogue's row order, labelled; the budget; the missing data sets.

    Raises:
        KeyError: a noise kind of `table` is not in :data:`pyrobust.catalog.NOISE_KINDS`.
    """
    lines = [_TITLE, "", _INTRODUCTION, "", _caption(), ""]
    for (dataset, model), block in table.groupby(["dataset", "model"], sort=False):
        lines += _block(dataset, model, block)
    lines += _budget(runs)
    if missing:
        lines += [
            "## Missing data sets",
            "",
            "Left out of the table because their files are absent and could not be fetched (the reason "
            "is in `logs/data/<name>.probe.log`; place the files under the data root or set `fetch: true`):",
            "",
            *[f"- {dataset_label(name)} (`{name}`)" for name in missing],
            "",
        ]
    return "\n".join(lines)
