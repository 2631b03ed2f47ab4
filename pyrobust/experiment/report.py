"""Table 2 from the result records: ``table2.csv``, ``table2.md`` (the paper's layout) and the figures.

The entry point of ``pyrobust report`` (and the workflow's ``report`` rule): :func:`write_reports` reads the
records (:mod:`~pyrobust.experiment.records`), averages the test accuracy over seeds per cell and marks
the best cells by the caption of the paper's Table 2 (:mod:`~pyrobust.experiment.table`), and writes the
CSV, the Markdown (:mod:`~pyrobust.experiment.markdown`) and the figures
(:mod:`~pyrobust.experiment.figures`), every file through :mod:`pyrobust._io`'s atomic writer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyrobust._io import write_text
from pyrobust.experiment.estimators import estimator_markdown, estimator_table
from pyrobust.experiment.figures import (
    plot_accuracy_vs_noise,
    plot_estimator_heat_maps,
    plot_paper_vs_ours,
    plot_transition_estimates,
)
from pyrobust.experiment.markdown import markdown_table
from pyrobust.experiment.records import load_records
from pyrobust.experiment.table import load_paper, summarize

__all__ = ["write_reports"]


def write_reports(
    results_dir: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    paper_csv: str | os.PathLike | None = None,
    missing: Sequence[str] = (),
    expected: Mapping[str | os.PathLike, Mapping[str, Any]] | None = None,
    csv: str | os.PathLike | None = None,
    markdown: str | os.PathLike | None = None,
    figures: str | os.PathLike | None = None,
    estimators: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Write ``table2.csv``, ``table2.md``, ``estimators.csv`` and ``figures/*.png`` under `out_dir` from the
    result records.

    ``estimators.csv``: the estimator comparison (:func:`pyrobust.experiment.estimators.estimator_table`,
    columns :data:`~pyrobust.experiment.estimators.ESTIMATOR_COLUMNS`), also a section of ``table2.md``, with
    the heat maps ``T_hat_by_estimator_<dataset>_<model>.png``; a header only when no run has an estimate.

    ``table2.csv`` has the columns :data:`pyrobust.experiment.table.CSV_COLUMNS` (one row per cell; floats
    at 6 significant digits); ``table2.md`` the paper's layout with the caption's marks: bold for the
    highest mean of a column and every mean not statistically far from it (Welch's t-test, p >= 0.05;
    within 0.5 points with one run), ``\\*`` for the ground-truth-``T`` rows above all others (then the
    next best bolded too), ``†`` for an estimated-``T`` row beating its ``T = I`` counterpart without
    injected noise. The figures: ``accuracy_vs_N.png``, ``paper_vs_ours.png`` (with `paper_csv`) and
    ``T_vs_T_hat_<dataset>_<model>.png`` per network with an estimate.

    Args:
        results_dir: a directory searched recursively for ``<method>.json`` records, or record files.
        out_dir: where the reports go (created, with its ``figures`` folder).
        paper_csv: the paper's Table 2 as CSV, printed beside our numbers.
        missing: data sets left out because their files are absent; listed at the end of the Markdown
            (duplicates dropped).
        expected: the runs asked for, per record file its settings (``epochs``, ``dataset``, ...; see
            :func:`pyrobust.experiment.records.load_records`): a record of other settings, or not asked
            for, is an error instead of a number averaged into a cell. The workflow passes its runs.
        csv, markdown, figures, estimators: the paths of the CSV, the Markdown, the figures' folder and the
            estimator comparison, instead of ``out_dir/table2.csv``, ``out_dir/table2.md``,
            ``out_dir/figures`` and ``estimators.csv`` beside the table's CSV (the workflow passes its rule's
            outputs).

    Returns:
        Name -> path of every file written (``csv``, ``markdown``, and one entry per figure).

    Raises:
        FileNotFoundError: `results_dir`, a record of `expected` or `paper_csv` does not exist.
        ValueError: a bad or stale record (named; see :func:`pyrobust.experiment.records.load_records`) or
            a paper CSV without the expected columns.
        OSError: a file cannot be written (files already written stay whole).
    """
    out = Path(out_dir)
    csv_path = out / "table2.csv" if csv is None else Path(csv)
    markdown_path = out / "table2.md" if markdown is None else Path(markdown)
    estimators_path = csv_path.parent / "estimators.csv" if estimators is None else Path(estimators)
    figures = out / "figures" if figures is None else Path(figures)
    runs = load_records(results_dir, expected=expected)  # every check before anything is written
    paper = load_paper(paper_csv) if paper_csv is not None else None
    table = summarize(runs, paper)
    missing = list(dict.fromkeys(missing))
    figures.mkdir(parents=True, exist_ok=True)

    written: dict[str, Path] = {}
    written["csv"] = write_text(csv_path, table.to_csv(index=False, float_format="%.6g"))
    comparison = estimator_table(runs)
    written["estimators"] = write_text(estimators_path, comparison.to_csv(index=False, float_format="%.6g"))
    section = estimator_markdown(comparison)
    text = markdown_table(table, runs, missing)
    written["markdown"] = write_text(markdown_path, text + ("\n" + "\n".join(section) if section else ""))
    if not runs.empty:
        for name, path in (
            ("accuracy_vs_N", plot_accuracy_vs_noise(runs, figures / "accuracy_vs_N.png")),
            ("paper_vs_ours", plot_paper_vs_ours(table, figures / "paper_vs_ours.png")),
        ):
            if path is not None:
                written[name] = path
        written.update(plot_transition_estimates(runs, figures))
        written.update(plot_estimator_heat_maps(runs, figures))
    return written
