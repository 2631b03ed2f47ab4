"""The corrected cross-entropies in plain PyTorch: the oracle of the tests and the explicit fallback.

For logits ``h`` (B, C), targets ``y`` (B,) and ``lse(v) = log sum_j exp(v_j)``:

* forward correction (paper eq. 5), in log space so that zeros of ``T`` are exact (``log 0 = -inf``)::

      loss_i = -log sum_j T[j, y_i] softmax(h_i)_j = lse(h_i) - lse(h_i + log T[:, y_i])

* backward correction (Theorem 1)::

      loss_i = sum_j T^{-1}[y_i, j] (-log softmax(h_i)_j) = sum_j T^{-1}[y_i, j] (lse(h_i) - h_ij)

Both take the same tables as the compiled ops (``log_T_t[y, j] = log T[j, y]``; ``T_inv``), return the
per-row loss (B,) in float64 for float64 logits and float32 otherwise, with 0 for rows whose target is
``ignore_index``, and are differentiated by autograd (w.r.t. the table too).
"""

from __future__ import annotations

import math

import torch


def check_targets(target: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """Raise ``IndexError`` if a target other than ``ignore_index`` lies outside ``[0, num_classes)``."""
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0, 0])
        raise IndexError(
            f"target[{i}] = {int(target[i])} is out of range for {num_classes} classes "
            f"(ignore_index = {ignore_index})"
        )


def _rows(logits: torch.Tensor, target: torch.Tensor, table: torch.Tensor, ignore_index: int):
    """Logits in the loss dtype, the table row of each target (rows of ignored targets: 0) and the mask."""
    if logits.dtype != torch.float64:
        logits = logits.float()
    valid = target != ignore_index
    rows = table.to(logits.dtype)[torch.where(valid, target, 0)]
    return logits, torch.where(valid[:, None], rows, torch.zeros_like(rows)), valid


def forward_corrected_ce(
    logits: torch.Tensor, target: torch.Tensor, log_T_t: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Per-row forward-corrected cross-entropy ``lse(h_i) - lse(h_i + log T[:, y_i])``, shape (B,)."""
    logits, log_T_col, valid = _rows(logits, target, log_T_t, ignore_index)
    loss = torch.logsumexp(logits, dim=1) - torch.logsumexp(logits + log_T_col, dim=1)
    return torch.where(valid, loss, torch.zeros_like(loss))


def backward_corrected_ce(
    logits: torch.Tensor, target: torch.Tensor, T_inv: torch.Tensor, ignore_index: int = -100, clip: float = 0.0
) -> torch.Tensor:
    """Per-row backward-corrected cross-entropy ``sum_j T_inv[y_i, j] (-log_softmax(h_i)_j)``, shape (B,).

    With ``clip > 0`` the probabilities are clipped to ``[clip, 1 - clip]`` before the log (zero gradient
    where clipped), as in the authors' Keras code.
    """
    logits, T_inv_row, valid = _rows(logits, target, T_inv, ignore_index)
    log_p = torch.log_softmax(logits, dim=1)
    if clip:
        log_p = log_p.clamp(math.log(clip), math.log1p(-clip))
    loss = -(T_inv_row * log_p).sum(dim=1)
    return torch.where(valid, loss, torch.zeros_like(loss))
