"""Table 2 from the result records: ``table2.csv``, ``table2.md`` (the paper's layout) and the figures.

Every training run writes one record ``<method>.json`` (see :mod:`pyrobust.train`). This module reads them
back, averages the test accuracy (percent) over seeds for each cell ``(dataset, model, method, noise, N)``,
sets the paper's number beside ours, and marks the best cells by the rule of the paper's Table 2 caption:

* **bold**: the highest mean of a column and every mean that is *not* statistically far from it, i.e.
  whose Welch's t-test against it (``scipy.stats.ttest_ind(equal_var=False)``) has ``p >= 0.05``; where a
  cell has a single run (the paper's CIFAR columns) the test is replaced by "within 0.5 points of the
  highest".
* ``*``: when the highest accuracy of a column is due to ``backward`` or ``forward`` with the ground-truth
  ``T``, the true-``T`` rows above every other row are starred (and bold), and the bold rule is applied
  again among the other rows ("we highlight the next highest accuracy as well"). Not in the no-noise
  columns, where the ground-truth ``T`` is the identity and gives those rows no advantage.
* ``†``: in a column without injected noise, ``backward_est`` / ``forward_est`` beating their ``T = I``
  counterparts (the estimator found some natural noise).

Means are compared at the precision they are printed with (one decimal), as a reader of the table would;
p-values are computed on the per-seed accuracies.

Heavy modules (pandas, scipy, matplotlib, seaborn) are imported inside the functions that use them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CSV_COLUMNS",
    "best_cells",
    "load_records",
    "summarize",
    "write_reports",
]

#: Table 2's rows, in the paper's order, then the optional extras.
METHODS = (
    "cross_entropy",
    "unhinged_bn",
    "sigmoid_bn",
    "savage",
    "bootstrap_soft",
    "bootstrap_hard",
    "backward",
    "backward_est",
    "forward",
    "forward_est",
    "gce",
    "sce",
)
METHOD_LABELS = {
    "cross_entropy": "cross-entropy",
    "unhinged_bn": "unhinged (BN)",
    "sigmoid_bn": "sigmoid (BN)",
    "savage": "Savage",
    "bootstrap_soft": "bootstrap soft",
    "bootstrap_hard": "bootstrap hard",
    "backward": "backward",
    "backward_est": "backward T̂",
    "forward": "forward",
    "forward_est": "forward T̂",
    "gce": "GCE",
    "sce": "SCE",
}
#: The corrections with the ground-truth T (the ``*`` rows) and the estimated-T rows paired with them.
TRUE_T_METHODS = ("backward", "forward")
ESTIMATED_COUNTERPART = {"backward_est": "backward", "forward_est": "forward"}

DATASETS = ("mnist5k", "mnist", "imdb", "cifar10", "cifar100")
DATASET_LABELS = {
    "mnist5k": "MNIST-5k",
    "mnist": "MNIST",
    "imdb": "IMDB",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
}
MODEL_LABELS = {
    "fc": "fully connected",
    "embedding": "word embedding",
    "lstm": "word embedding + LSTM",
    "resnet14": "14-layer ResNet",
    "resnet32": "32-layer ResNet",
    "resnet44": "44-layer ResNet",
}
NOISE_ORDER = {"none": 0, "symmetric": 1, "asymmetric": 2}
NOISE_LABELS = {"none": "NO NOISE", "symmetric": "SYMM.", "asymmetric": "ASYMM."}

#: The paper has no MNIST-5k: the embedded subset is compared with the paper's full-MNIST row.
PAPER_REFERENCE = {"mnist5k": "mnist"}

ALPHA = 0.05
TOLERANCE = 0.5
DECIMALS = 1

CELL = ["dataset", "model", "method", "noise", "N"]
COLUMN = ["dataset", "model", "noise", "N"]
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
_RECORD_KEYS = ("dataset", "model", "method", "noise", "N", "seed", "test_accuracy")


# ----------------------------------------------------------------------------------------------- records


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


def load_records(results: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per training run, from result records (files, or directories searched recursively).

    JSON files that are not result records (``T_hat.json``, data probes) are skipped. A record with a key
    missing or an accuracy outside [0, 100] is an error naming the file.
    """
    import pandas as pd

    rows = []
    for path in _record_paths(results):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(record, dict) or "test_accuracy" not in record:
            continue
        missing = [key for key in _RECORD_KEYS if key not in record]
        if missing:
            raise ValueError(f"{path}: result record lacks {', '.join(missing)}")
        accuracy = float(record["test_accuracy"])
        if not 0.0 <= accuracy <= 100.0:
            raise ValueError(f"{path}: test_accuracy {accuracy} is not a percentage in [0, 100]")
        if record["method"] not in METHOD_LABELS:
            raise ValueError(f"{path}: unknown method {record['method']!r}")
        rows.append(
            {
                **{key: record[key] for key in _RECORD_KEYS},
                "N": round(float(record["N"]), 6),
                "test_accuracy": accuracy,
                "epochs": record.get("epochs"),
                "wall_time_s": record.get("wall_time_s"),
                "device": record.get("device"),
                "threads": record.get("threads"),
                "T": record.get("T"),
                "T_hat": record.get("T_hat"),
                "path": str(path),
            }
        )
    columns = [*_RECORD_KEYS, "epochs", "wall_time_s", "device", "threads", "T", "T_hat", "path"]
    runs = pd.DataFrame(rows, columns=columns)
    duplicated = runs.duplicated(CELL + ["seed"], keep=False)
    if duplicated.any():
        paths = ", ".join(runs.loc[duplicated, "path"].head(4))
        raise ValueError(f"the same run (dataset, model, method, noise, N, seed) is recorded twice: {paths}")
    return runs


# ------------------------------------------------------------------------------------------- bolding


def _rounded(value: float) -> float:
    return round(value, DECIMALS)


def _top_group(samples: Mapping[str, Sequence[float]], alpha: float, tolerance: float) -> set[str]:
    """The highest mean and every row not statistically far from it (Welch), or within `tolerance`."""
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
    """The marks of one column of Table 2: method -> subset of ``{"bold", "star", "dagger"}``.

    Args:
        samples: per method, its test accuracies (percent) over seeds in this column.
        noise: the column's noise kind; ``†`` is only given where it is ``"none"``.
        alpha: significance level of Welch's t-test (the paper's 5%).
        tolerance: with a single run, rows within this many points of the highest are bold (0.5).

    Returns:
        A dict with every method of `samples` as key.
    """
    samples = {method: [float(v) for v in values] for method, values in samples.items() if len(values)}
    marks: dict[str, set[str]] = {method: set() for method in samples}
    if not samples:
        return marks
    means = {method: sum(values) / len(values) for method, values in samples.items()}
    others = {m: v for m, v in samples.items() if m not in TRUE_T_METHODS}
    top = max(means, key=means.__getitem__)
    starred = []
    # Without injected noise the "ground-truth T" is the identity: those rows use no extra knowledge and
    # compete as ordinary rows (the paper has no * in its no-noise columns).
    if noise != "none" and top in TRUE_T_METHODS and others:
        best_other = max(_rounded(means[m]) for m in others)
        starred = [m for m in samples if m in TRUE_T_METHODS and _rounded(means[m]) > best_other]
    if starred:
        for method in starred:
            marks[method] |= {"star", "bold"}
        bold = _top_group(others, alpha, tolerance)
    else:  # no true-T row stands above the rest (a tie at the printed precision included)
        bold = _top_group(samples, alpha, tolerance)
    for method in bold:
        marks[method].add("bold")
    if noise == "none":
        for estimated, counterpart in ESTIMATED_COUNTERPART.items():
            if estimated in means and counterpart in means:
                if _rounded(means[estimated]) > _rounded(means[counterpart]):
                    marks[estimated].add("dagger")
    return marks


# ------------------------------------------------------------------------------------------- table


def _sort_key(frame: pd.DataFrame) -> pd.DataFrame:
    order = {
        "dataset": {d: i for i, d in enumerate(DATASETS)},
        "model": {m: i for i, m in enumerate(MODEL_LABELS)},
        "method": {m: i for i, m in enumerate(METHODS)},
        "noise": NOISE_ORDER,
    }
    return frame.assign(
        **{f"_{key}": frame[key].map(ranks).fillna(len(ranks)) for key, ranks in order.items()}
    ).sort_values(["_dataset", "dataset", "_model", "model", "_noise", "N", "_method"])


def load_paper(paper_csv: str | os.PathLike) -> pd.DataFrame:
    """The paper's Table 2 (columns dataset, model, method, noise, N, accuracy, std, runs)."""
    import pandas as pd

    paper = pd.read_csv(paper_csv)
    expected = {"dataset", "model", "method", "noise", "N", "accuracy", "std", "runs"}
    if not expected <= set(paper.columns):
        raise ValueError(f"{paper_csv}: expected columns {sorted(expected)}, got {list(paper.columns)}")
    return paper.assign(N=paper["N"].astype(float).round(6))


def summarize(runs: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 2 as a tidy frame with :data:`CSV_COLUMNS`: one row per cell, marks, the paper's value."""
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
        reference = table["dataset"].map(lambda d: PAPER_REFERENCE.get(d, d))
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


# ------------------------------------------------------------------------------------------- markdown


def _format_N(N: float) -> str:
    return f"{N:g}"


def _cell_text(row: Any) -> str:
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


def _markdown(table: pd.DataFrame, runs: pd.DataFrame, missing: Sequence[str]) -> str:
    lines = [
        "# Table 2: average test accuracy (%) with loss correction and its competitors",
        "",
        "Reproduction of Table 2 of Patrini et al., *Making Deep Neural Networks Robust to Label Noise: a "
        "Loss Correction Approach* (CVPR 2017). Each cell: mean ± sample standard deviation of the clean "
        "test accuracy over the seeds (a single number where there is one run), then the paper's number in "
        "parentheses.",
        "",
        "Bold: the highest mean of a column and every mean not statistically far from it (Welch's t-test, "
        f"p ≥ {ALPHA:g}); with one run, every mean within {TOLERANCE:g} points of the highest. "
        "\\*: the highest accuracy is due to backward or forward with the ground-truth T (injected noise "
        "only); those rows (above all others) are starred and the best of the remaining rows is bolded as "
        "well. "
        "†: no injected noise, and the correction with T̂ beats the one with T = I (natural noise found). "
        "Means are compared at the printed precision.",
        "",
    ]
    for (dataset, model), block in table.groupby(["dataset", "model"], sort=False):
        title = f"{DATASET_LABELS.get(dataset, dataset)}, {MODEL_LABELS.get(model, model)}"
        lines += [f"## {title}", ""]
        references = sorted(set(block["paper_reference"]) - {""})
        for reference in references:
            ref_dataset, ref_model = reference.split("/")
            if ref_dataset != dataset:
                lines += [
                    f"The paper has no {DATASET_LABELS.get(dataset, dataset)} column: the numbers in "
                    f"parentheses are the paper's {DATASET_LABELS.get(ref_dataset, ref_dataset)}, "
                    f"{MODEL_LABELS.get(ref_model, ref_model)} (60,000 training digits), for comparison "
                    "only.",
                    "",
                ]
        columns = block[["noise", "N"]].drop_duplicates().itertuples(index=False)
        columns = list(columns)
        header = [
            NOISE_LABELS[c.noise] + ("" if c.noise == "none" else f" N={_format_N(c.N)}")
            for c in columns
        ]
        lines += ["| | " + " | ".join(header) + " |", "|---|" + "---|" * len(columns)]
        cells = {(row.method, row.noise, row.N): row for row in block.itertuples(index=False)}
        for method in [m for m in METHODS if m in set(block["method"])]:
            row = [METHOD_LABELS[method]]
            for c in columns:
                cell = cells.get((method, c.noise, c.N))
                row.append("" if cell is None else _cell_text(cell))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += ["## Budget", ""]
    if runs.empty:
        lines += ["No result records were found.", ""]
    else:
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
                f"| {DATASET_LABELS.get(dataset, dataset)} | {MODEL_LABELS.get(model, model)} | {epochs} | "
                f"{seeds} | {len(block)} | {block['wall_time_s'].sum():.0f} | {devices} | {threads} |"
            )
        lines.append("")
    if missing:
        lines += [
            "## Missing data sets",
            "",
            "Left out of the table because their files are absent and could not be fetched (the reason "
            "is in `logs/data/<name>.probe.log`; place the files under the data root or set `fetch: true`):",
            "",
            *[f"- {DATASET_LABELS.get(name, name)} (`{name}`)" for name in missing],
            "",
        ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- figures


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_accuracy_vs_noise(runs: pd.DataFrame, path: Path) -> Path | None:
    """Test accuracy against the asymmetric noise level N, one line per method, one panel per network.

    As the paper's Figure 1; the no-noise column is the point N = 0.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    curve = runs[runs["noise"].isin(["none", "asymmetric"])]
    if curve.empty:
        return None
    curve = curve.assign(
        panel=[
            f"{DATASET_LABELS.get(d, d)}, {MODEL_LABELS.get(m, m)}"
            for d, m in zip(curve["dataset"], curve["model"])
        ],
        method=curve["method"].map(METHOD_LABELS),
    )
    panels = list(dict.fromkeys(curve["panel"]))
    hue_order = [METHOD_LABELS[m] for m in METHODS if METHOD_LABELS[m] in set(curve["method"])]
    sns.set_theme(style="whitegrid", context="notebook")
    grid = sns.relplot(
        data=curve,
        x="N",
        y="test_accuracy",
        hue="method",
        hue_order=hue_order,
        style="method",
        style_order=hue_order,
        col="panel",
        col_order=panels,
        col_wrap=min(3, len(panels)),
        kind="line",
        markers=True,
        dashes=False,
        errorbar="sd",
        palette=sns.color_palette("tab10" if len(hue_order) <= 10 else "tab20", len(hue_order)),
        height=3.6,
        aspect=1.15,
        facet_kws={"sharey": False},
    )
    grid.set_titles("{col_name}")
    grid.set_axis_labels("asymmetric noise level N", "test accuracy (%)")
    grid.figure.suptitle("Accuracy against asymmetric noise (mean ± sd over seeds)", y=1.03)
    return _save(grid.figure, path)


def _network_label(dataset: str, model: str, reference: str) -> str:
    label = f"{DATASET_LABELS.get(dataset, dataset)}, {MODEL_LABELS.get(model, model)}"
    paper_dataset = reference.split("/")[0]
    if paper_dataset != dataset:
        label += f" (vs the paper's {DATASET_LABELS.get(paper_dataset, paper_dataset)})"
    return label


def plot_paper_vs_ours(table: pd.DataFrame, path: Path) -> Path | None:
    """Our mean accuracy of every cell against the paper's, with the diagonal."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    both = table.dropna(subset=["paper_mean"])
    if both.empty:
        return None
    both = both.assign(
        method=both["method"].map(METHOD_LABELS),
        setting=[
            "no noise" if n == "none" else f"{n} N={_format_N(v)}" for n, v in zip(both["noise"], both["N"])
        ],
        network=[_network_label(d, m, r) for d, m, r in zip(both["dataset"], both["model"], both["paper_reference"])],
    )
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    low = min(both["mean"].min(), both["paper_mean"].min())
    lims = (max(0.0, low - 5), 100.5)
    ax.plot(lims, lims, color="0.6", lw=1, ls="--", zorder=0)
    hue_order = [METHOD_LABELS[m] for m in METHODS if METHOD_LABELS[m] in set(both["method"])]
    sns.scatterplot(
        data=both,
        x="paper_mean",
        y="mean",
        hue="method",
        hue_order=hue_order,
        style="setting",
        palette=sns.color_palette("tab10" if len(hue_order) <= 10 else "tab20", len(hue_order)),
        s=55,
        ax=ax,
    )
    ax.set(xlim=lims, ylim=lims, xlabel="paper's accuracy (%)", ylabel="our accuracy (%)")
    networks = "; ".join(dict.fromkeys(both["network"]))
    ax.set_title(f"Ours vs the paper's Table 2\n{networks}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    return _save(fig, path)


def plot_transition_estimates(runs: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """T vs T̂ heat maps per network, at the highest asymmetric noise level, for the first seed."""
    import numpy as np

    from pyrobust.plots import plot_transition_matrices

    written = {}
    estimated = runs[runs["T_hat"].notna() & (runs["noise"] == "asymmetric")]
    for (dataset, model), block in estimated.groupby(["dataset", "model"], sort=False):
        block = block.sort_values(["N", "seed", "method"], ascending=[False, True, True])
        record = block.iloc[0]
        T, T_hat = np.asarray(record["T"], dtype=np.float64), np.asarray(record["T_hat"], dtype=np.float64)
        title = (
            f"{DATASET_LABELS.get(dataset, dataset)}, {MODEL_LABELS.get(model, model)}: asymmetric "
            f"N={_format_N(record['N'])}, seed {record['seed']}"
        )
        fig = plot_transition_matrices(T, T_hat, title=title)
        name = f"T_vs_T_hat_{dataset}_{model}"
        written[name] = _save(fig, out_dir / f"{name}.png")
    return written


# ------------------------------------------------------------------------------------------- entry point


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_reports(
    results_dir: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    paper_csv: str | os.PathLike | None = None,
    missing: Sequence[str] = (),
) -> dict[str, Path]:
    """Write ``table2.csv``, ``table2.md`` and ``figures/*.png`` under `out_dir` from the result records.

    Args:
        results_dir: a directory searched recursively for ``<method>.json`` records, or record files.
        out_dir: where the reports go (created).
        paper_csv: the paper's Table 2 as CSV, printed beside our numbers.
        missing: data sets left out because their files are absent; listed at the end of the Markdown.

    Returns:
        Name -> path of every file written (``csv``, ``markdown``, and one entry per figure).
    """
    out = Path(out_dir)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    runs = load_records(results_dir)
    paper = load_paper(paper_csv) if paper_csv is not None else None
    table = summarize(runs, paper)
    missing = list(dict.fromkeys(missing))

    written: dict[str, Path] = {}
    csv = out / "table2.csv"
    _atomic_write_text(csv, table.to_csv(index=False, float_format="%.6g"))
    written["csv"] = csv
    markdown = out / "table2.md"
    _atomic_write_text(markdown, _markdown(table, runs, missing))
    written["markdown"] = markdown
    if not runs.empty:
        for name, path in (
            ("accuracy_vs_N", plot_accuracy_vs_noise(runs, figures / "accuracy_vs_N.png")),
            ("paper_vs_ours", plot_paper_vs_ours(table, figures / "paper_vs_ours.png")),
        ):
            if path is not None:
                written[name] = path
        written.update(plot_transition_estimates(runs, figures))
    return written
