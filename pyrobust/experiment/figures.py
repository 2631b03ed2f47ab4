"""The report's figures: accuracy against the noise level, ours against the paper's, ``T`` against ``T̂``.

Each figure is rendered into memory and written with :func:`pyrobust._io.atomic_write`, so a reader never
finds half a PNG. Labels and row order come from the catalogue. matplotlib, seaborn and numpy are
imported inside the functions.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyrobust._io import atomic_write
from pyrobust.experiment.markdown import format_N
from pyrobust.experiment.records import dataset_label, method_label, method_order, network_label

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "plot_accuracy_vs_noise",
    "plot_estimator_heat_maps",
    "plot_paper_vs_ours",
    "plot_transition_estimates",
    "save_figure",
]


def save_figure(fig: Any, path: str | Path) -> Path:
    """Render `fig` (format from the suffix of `path`, PNG by default) at 120 dpi, write it atomically, close it.

    Raises:
        OSError: the file cannot be written (it is then left as it was).
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return path


def _hue_order(labels: Any) -> list[str]:
    """The methods' labels present in `labels`, in the catalogue's row order."""
    present = set(labels)
    return [label for label in map(method_label, method_order()) if label in present]


def plot_accuracy_vs_noise(runs: pd.DataFrame, path: str | Path) -> Path | None:
    """Test accuracy against the asymmetric noise level N, one line per method, one panel per network.

    As the paper's Figure 1; the no-noise column is the point N = 0. Lines are the mean over seeds, bands
    ± one sample standard deviation.

    Args:
        runs: the runs (:func:`pyrobust.experiment.records.load_records`: columns ``dataset, model,
            method, noise, N, test_accuracy``).
        path: the figure's file (``.png``).

    Returns:
        `path`, or None (nothing written) where there is no run without noise or with asymmetric noise.

    Raises:
        OSError: the file cannot be written.
    """
    import seaborn as sns

    curve = runs[runs["noise"].isin(["none", "asymmetric"])]
    if curve.empty:
        return None
    curve = curve.assign(
        panel=[f"{dataset_label(d)}, {network_label(m)}" for d, m in zip(curve["dataset"], curve["model"])],
        method=curve["method"].map(method_label),
    )
    panels = list(dict.fromkeys(curve["panel"]))
    hue_order = _hue_order(curve["method"])
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
    return save_figure(grid.figure, path)


def _network_title(dataset: str, model: str, reference: str) -> str:
    label = f"{dataset_label(dataset)}, {network_label(model)}"
    paper_dataset = reference.split("/")[0]
    if paper_dataset != dataset:
        label += f" (vs the paper's {dataset_label(paper_dataset)})"
    return label


def plot_paper_vs_ours(table: pd.DataFrame, path: str | Path) -> Path | None:
    """Our mean accuracy of every cell against the paper's, with the diagonal.

    Args:
        table: Table 2 as :func:`pyrobust.experiment.table.summarize` returns it (columns ``mean``,
            ``paper_mean``, ``paper_reference``, ...).
        path: the figure's file (``.png``).

    Returns:
        `path`, or None (nothing written) where no cell has a paper's number.

    Raises:
        OSError: the file cannot be written.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    both = table.dropna(subset=["paper_mean"])
    if both.empty:
        return None
    both = both.assign(
        method=both["method"].map(method_label),
        setting=[
            "no noise" if n == "none" else f"{n} N={format_N(v)}" for n, v in zip(both["noise"], both["N"])
        ],
        network=[
            _network_title(d, m, r) for d, m, r in zip(both["dataset"], both["model"], both["paper_reference"])
        ],
    )
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    low = min(both["mean"].min(), both["paper_mean"].min())
    lims = (max(0.0, low - 5), 100.5)
    ax.plot(lims, lims, color="0.6", lw=1, ls="--", zorder=0)
    hue_order = _hue_order(both["method"])
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
    return save_figure(fig, path)


def plot_transition_estimates(runs: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """``T`` against ``T̂`` heat maps per network, at the highest asymmetric noise level, for the first seed.

    Args:
        runs: the runs (:func:`pyrobust.experiment.records.load_records`: columns ``dataset, model,
            method, noise, N, seed, T, T_hat``); only asymmetric-noise runs with a ``T_hat`` are drawn
            (per network the highest N, then the lowest seed, then the first method by name).
        out_dir: the folder of the figures, named ``T_vs_T_hat_<dataset>_<model>.png``.

    Returns:
        Figure name (``T_vs_T_hat_<dataset>_<model>``) -> its path; empty where no run has a ``T_hat``.

    Raises:
        ValueError: a record's ``T`` is not a transition matrix, or ``T_hat`` has another shape.
        OSError: a file cannot be written.
    """
    import numpy as np

    from pyrobust.plots import plot_transition_matrices

    written = {}
    # the paper's estimate (the records of forward_est and backward_est): the estimators' own figure is
    # plot_estimator_heat_maps
    own = runs["method"].isin(["forward_est", "backward_est"])
    estimated = runs[runs["T_hat"].notna() & (runs["noise"] == "asymmetric") & own]
    for (dataset, model), block in estimated.groupby(["dataset", "model"], sort=False):
        block = block.sort_values(["N", "seed", "method"], ascending=[False, True, True])
        record = block.iloc[0]
        T, T_hat = np.asarray(record["T"], dtype=np.float64), np.asarray(record["T_hat"], dtype=np.float64)
        title = (
            f"{dataset_label(dataset)}, {network_label(model)}: asymmetric "
            f"N={format_N(record['N'])}, seed {record['seed']}"
        )
        fig = plot_transition_matrices(T, T_hat, title=title)
        name = f"T_vs_T_hat_{dataset}_{model}"
        written[name] = save_figure(fig, Path(out_dir) / f"{name}.png")
    return written


def plot_estimator_heat_maps(runs: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """``T`` beside every estimator's ``T̂`` as heat maps, per network at its highest noise, first seed.

    Args:
        runs: the runs (:func:`pyrobust.experiment.records.load_records`); the estimates are those of the
            estimated-T and learned-T records (:func:`pyrobust.experiment.estimators.estimator_of`), drawn
            at the highest N of the network's runs with an estimate (asymmetric before symmetric at a tie),
            lowest seed.
        out_dir: the folder of the figures, named ``T_hat_by_estimator_<dataset>_<model>.png``.

    Returns:
        Figure name -> its path; empty where no run has an estimate.

    Raises:
        OSError: a file cannot be written.
    """
    import numpy as np
    import seaborn as sns
    from matplotlib.figure import Figure

    from pyrobust.experiment.estimators import estimator_label, estimator_of
    from pyrobust.registry import list_estimators

    written = {}
    found = [estimator_of(m, d) for m, d in zip(runs["method"], runs["dataset"])]
    keep = np.array([f is not None for f in found], dtype=bool) & runs["T_hat"].notna().to_numpy()
    estimated = runs[keep].assign(estimator=[f[0] for f, k in zip(found, keep) if k])
    for (dataset, model), block in estimated.groupby(["dataset", "model"], sort=False):
        top = block.sort_values(["N", "noise", "seed"], ascending=[False, True, True]).iloc[0]
        block = block[(block["N"] == top["N"]) & (block["noise"] == top["noise"]) & (block["seed"] == top["seed"])]
        panels = [("T (true)", np.asarray(top["T"], dtype=np.float64))]
        # the estimators in the registry's order (the paper's first), then the methods that learn T
        order = {name: i for i, name in enumerate(list_estimators())}
        for estimator, rows in sorted(block.groupby("estimator", sort=False),
                                      key=lambda item: order.get(item[0], len(order))):
            panels.append((estimator_label(estimator), np.asarray(rows.iloc[0]["T_hat"], dtype=np.float64)))
        C = panels[0][1].shape[0]
        fig = Figure(figsize=(3.2 * len(panels), 3.4))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for k, (ax, (label, matrix)) in enumerate(zip(axes, panels)):
            sns.heatmap(matrix, ax=ax, vmin=0, vmax=1, cmap="viridis", cbar=False, square=True,
                        annot=C <= 10, fmt=".1f", annot_kws={"fontsize": 6})
            error = "" if label == "T (true)" else f"\nMAE {np.abs(matrix - panels[0][1]).mean():.3f}"
            ax.set_title(f"{label}{error}", fontsize=8)
            ax.set_xlabel("noisy class")
            ax.set_ylabel("clean class" if k == 0 else "")
        fig.suptitle(f"{dataset_label(dataset)}, {network_label(model)}: {top['noise']} N={format_N(top['N'])}, "
                     f"seed {top['seed']}")
        name = f"T_hat_by_estimator_{dataset}_{model}"
        written[name] = save_figure(fig, Path(out_dir) / f"{name}.png")
    return written
