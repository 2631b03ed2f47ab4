"""Figures of transition matrices: the true ``T`` next to its estimate ``T_hat``.

matplotlib and seaborn are imported inside the function, so ``import pyrobust`` stays fast. Figures are
built with ``matplotlib.figure.Figure`` (never pyplot), so they need no display and leave pyplot's global
state alone; saving uses the Agg renderer.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from pyrobust._checks import check_transition_matrix
from pyrobust._io import atomic_write
from pyrobust.estimate import estimation_error

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_transition_matrices"]

# Above this many classes the cells are too small for printed values (CIFAR-100 is 100 x 100).
_MAX_ANNOTATED_CLASSES = 20


def plot_transition_matrices(
    T: torch.Tensor | np.ndarray,
    T_hat: torch.Tensor | np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    ax: Sequence[Axes] | None = None,
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Draw ``T`` and ``T_hat`` side by side as heat maps on one colour scale ``[0, 1]``.

    Rows are the clean class ``i``, columns the noisy class ``j`` (``T[i, j] = p(noisy = j | clean = i)``).
    Cells show their values when ``C <= 20``. The figure's title reports :func:`pyrobust.estimation_error`
    (mean absolute error per entry and largest row L1 distance) after ``title`` if given.

    ``class_names``: ``C`` tick labels (default ``0 .. C-1``). ``ax``: two matplotlib axes to draw into
    (default: a new figure). ``path``: also save the figure there, atomically (format from the suffix,
    e.g. ``.png``). Returns the figure.

    Raises:
        ValueError: ``T`` or ``T_hat`` is not a valid ``C x C`` transition matrix, their sizes differ, or
            ``class_names``/``ax`` have the wrong length.
    """
    from matplotlib.figure import Figure  # lazy: heavy imports
    import seaborn as sns

    T = check_transition_matrix(_as_matrix(T), name="T").numpy()
    T_hat = _as_matrix(T_hat).numpy()  # an estimate need not be row-normalised
    if T.shape != T_hat.shape:
        raise ValueError(f"T is {T.shape[0]} x {T.shape[1]} but T_hat is {T_hat.shape[0]} x {T_hat.shape[1]}")
    C = T.shape[0]
    labels = [str(i) for i in range(C)] if class_names is None else [str(name) for name in class_names]
    if len(labels) != C:
        raise ValueError(f"class_names has {len(labels)} names for {C} classes")

    if ax is None:
        side = min(3.0 + 0.4 * C, 9.0)
        figure = Figure(figsize=(2 * side + 1.5, side + 0.6), layout="constrained")
        axes = figure.subplots(1, 2)
    else:
        axes = list(ax)
        if len(axes) != 2:
            raise ValueError(f"ax must hold two axes (for T and T_hat), got {len(axes)}")
        figure = axes[0].figure

    annotate = C <= _MAX_ANNOTATED_CLASSES
    tick_step = 1 if C <= 30 else 10
    for axis, matrix, name in zip(axes, (T, T_hat), ("T (true)", "$\\hat{T}$ (estimated)")):
        sns.heatmap(
            matrix, ax=axis, vmin=0.0, vmax=1.0, cmap="viridis", square=True, annot=annotate, fmt=".2f",
            annot_kws={"fontsize": 7}, cbar=axis is axes[1], cbar_kws={"shrink": 0.8},
            xticklabels=labels[::tick_step] if tick_step > 1 else labels,
            yticklabels=labels[::tick_step] if tick_step > 1 else labels,
        )  # fmt: skip
        if tick_step > 1:
            ticks = np.arange(0, C, tick_step) + 0.5
            axis.set_xticks(ticks, labels[::tick_step])
            axis.set_yticks(ticks, labels[::tick_step])
        axis.set_title(name)
        axis.set_xlabel("noisy class j")
        axis.set_ylabel("clean class i")
    error = estimation_error(T_hat, T)
    summary = f"MAE {error['mae']:.4f}, max row L1 {error['max_row_l1']:.4f}"
    figure.suptitle(f"{title}: {summary}" if title else summary)
    if path is not None:  # rendered in memory, then written atomically: never a partial PNG under `path`
        buffer = io.BytesIO()
        figure.savefig(buffer, format=os.path.splitext(os.fspath(path))[1].lstrip(".") or "png", dpi=150)
        atomic_write(path, buffer.getvalue())
    return figure


def _as_matrix(M: torch.Tensor | np.ndarray) -> torch.Tensor:
    M = torch.as_tensor(M).detach().to("cpu", torch.float64)
    if M.dim() != 2 or M.shape[0] != M.shape[1] or not torch.isfinite(M).all():
        raise ValueError(f"expected a finite square C x C matrix, got shape {tuple(M.shape)}")
    return M
