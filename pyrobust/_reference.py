"""The corrected cross-entropies in plain PyTorch: the oracle of the tests and the explicit fallback.

For logits ``h`` (B, C), targets ``y`` (B,) and ``lse(v) = log sum_j exp(v_j)``:

* forward correction (paper eq. 5), in log space so that zeros of ``T`` are exact (``log 0 = -inf``)::

      loss_i = -log sum_j T[j, y_i] softmax(h_i)_j = lse(h_i) - lse(h_i + log T[:, y_i])

* backward correction (Theorem 1)::

      loss_i = sum_j T^{-1}[y_i, j] (-log softmax(h_i)_j) = sum_j T^{-1}[y_i, j] (lse(h_i) - h_ij)

Both take the same tables as the compiled ops (``log_T_t[y, j] = log T[j, y]``; ``T_inv``), return the
per-row loss (B,) in float64 for float64 logits and float32 otherwise, with 0 for rows whose target is
``ignore_index``, and are differentiated by autograd (w.r.t. the table too, and twice). They check their
logits and targets as every loss of pyrobust does (``pyrobust._checks``); :func:`reduce` reduces their
rows as ``F.cross_entropy`` does.
"""

from __future__ import annotations

import math

import torch

from pyrobust._checks import check_logits_and_target, check_reduction, check_targets


def _rows(logits: torch.Tensor, target: torch.Tensor, table: torch.Tensor, ignore_index: int):
    """Logits in the loss dtype, the table row of each target (rows of ignored targets: 0) and the mask,
    after checking the logits and targets."""
    check_targets(target, check_logits_and_target(logits, target), ignore_index)
    if logits.dtype != torch.float64:
        logits = logits.float()
    valid = target != ignore_index
    rows = table.to(logits.dtype)[torch.where(valid, target, 0)]
    return logits, torch.where(valid[:, None], rows, torch.zeros_like(rows)), valid


def forward_corrected_ce(
    logits: torch.Tensor, target: torch.Tensor, log_T_t: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Per-row forward-corrected cross-entropy (paper, eq. 5) ``lse(h_i) - lse(h_i + log T[:, y_i])``.

    Args:
        logits: (B, C) floating point (computed in float32, or float64 for float64 logits).
        target: (B,) int64 classes in ``[0, C)`` or ``ignore_index``.
        log_T_t: (C, C) ``log T`` transposed (``-inf`` where T is 0).
        ignore_index: target value of rows whose loss is 0.

    Returns:
        (B,) losses in nats.

    Raises:
        TypeError, DtypeError, ValueError, IndexError: bad logits or targets (``pyrobust._checks``).
    """
    logits, log_T_col, valid = _rows(logits, target, log_T_t, ignore_index)
    loss = torch.logsumexp(logits, dim=1) - torch.logsumexp(logits + log_T_col, dim=1)
    return torch.where(valid, loss, torch.zeros_like(loss))


def backward_corrected_ce(
    logits: torch.Tensor, target: torch.Tensor, T_inv: torch.Tensor, ignore_index: int = -100, clip: float = 0.0
) -> torch.Tensor:
    """Per-row backward-corrected cross-entropy (Theorem 1) ``sum_j T_inv[y_i, j] (-log_softmax(h_i)_j)``.

    With ``clip > 0`` the probabilities are clipped to ``[clip, 1 - clip]`` before the log (zero gradient
    where clipped), as in the authors' Keras code.

    Args:
        logits: (B, C) floating point (computed in float32, or float64 for float64 logits).
        target: (B,) int64 classes in ``[0, C)`` or ``ignore_index``.
        T_inv: (C, C) inverse of the (possibly identity-mixed) transition matrix.
        ignore_index: target value of rows whose loss is 0.
        clip: probability clip ``eps`` in ``[0, 0.5)``; 0 for the exact loss.

    Returns:
        (B,) losses in nats (negative values possible).

    Raises:
        TypeError, DtypeError, ValueError, IndexError: bad logits or targets (``pyrobust._checks``).
    """
    logits, T_inv_row, valid = _rows(logits, target, T_inv, ignore_index)
    log_p = torch.log_softmax(logits, dim=1)
    if clip:
        log_p = log_p.clamp(math.log(clip), math.log1p(-clip))
    loss = -(T_inv_row * log_p).sum(dim=1)
    return torch.where(valid, loss, torch.zeros_like(loss))


def reduce(loss: torch.Tensor, target: torch.Tensor, reduction: str, ignore_index: int = -100) -> torch.Tensor:
    """Reduce per-row losses (B,) as ``F.cross_entropy`` does.

    ``"none"``: ``loss`` itself; ``"sum"``: its sum; ``"mean"``: the sum over the number of rows whose target
    is not ``ignore_index`` (ignored rows hold 0), nan (0 / 0) with a zero gradient when every row is ignored.

    Args:
        loss: (B,) floating point per-row losses.
        target: (B,) int64 targets (only compared with ``ignore_index``).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        ignore_index: target value of the rows that do not count in a mean.

    Returns:
        ``loss`` (``"none"``) or a scalar of its dtype.

    Raises:
        ValueError: an unknown ``reduction``.
    """
    check_reduction(reduction)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    count = (target != ignore_index).sum().to(loss.dtype)
    return torch.where(count > 0, loss.sum() / count.clamp_min(1), torch.nan)
