"""``F.cross_entropy``'s shapes as the corrected losses' kernels take them (:class:`_Rows`), and the
class-probability path both corrections share (:func:`_soft_loss`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from pyrobust import _reference
from pyrobust._ops import _table_dtype


class _Rows:
    """The inputs of ``F.cross_entropy``'s shapes as the kernels take them: logits (B, C) with class indices
    (B,) int64, K-dimensional logits as (N, C, S) with (N, S) (a view: the CPU kernels read that layout),
    or class probabilities (B, C); and how to give the result back its shape and dtype."""

    def __init__(self, input: torch.Tensor, target: torch.Tensor, soft: bool) -> None:
        self.soft = soft
        if input.dim() == 1:  # unbatched
            self.logits, self.target, self.shape = input[None], target[None], ()
        elif input.dim() == 2:
            self.logits, self.target, self.shape = input, target, None
        else:  # (N, C, d1, ..., dK)
            N, C = input.shape[:2]
            self.shape = input.shape[:1] + input.shape[2:]
            if soft:  # one row per position
                self.logits = input.movedim(1, -1).reshape(-1, C)
                self.target = target.movedim(1, -1).reshape(-1, C)
            else:
                self.logits, self.target = input.reshape(N, C, -1), target.reshape(N, -1)
        if not soft and self.target.dtype != torch.int64:
            self.target = self.target.long()  # uint8 class indices
        # F.cross_entropy's dtype: the logits' (promoted with soft targets'), float32 under autocast
        dtype = torch.promote_types(input.dtype, target.dtype) if soft else input.dtype
        self.dtype = None if torch.is_autocast_enabled(input.device.type) else dtype

    def flat(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, C) and targets (B,) or (B, C), for the plain-PyTorch paths (a copy if K-dimensional)."""
        if self.logits.dim() == 3:
            return self.logits.movedim(1, -1).reshape(-1, self.logits.shape[1]), self.target.reshape(-1)
        return self.logits, self.target

    def finish(self, loss: torch.Tensor, reduction: str) -> torch.Tensor:
        if reduction == "none" and self.shape is not None:
            loss = loss.reshape(self.shape)
        return loss if self.dtype is None or loss.dtype == self.dtype else loss.to(self.dtype)


def _soft_loss(correction: Callable, rows: _Rows, C: int, label_smoothing: float, ignore_index: int, weight,
               reduction: str) -> torch.Tensor:
    """A loss of class probabilities, ``correction(logits, probabilities)`` per row, reduced: the given
    probabilities (smoothed by ``eps``), or ``(1 - eps) e_y + eps / C`` for class indices (0 for ignored rows).
    A mean divides by the number of rows for class probabilities (``F.cross_entropy``), as a mean of class
    indices for smoothed class indices."""
    h, y = rows.flat()
    if rows.soft:
        s = y if not label_smoothing else (1 - label_smoothing) * y + label_smoothing / C
    else:
        valid = y != ignore_index
        onehot = F.one_hot(torch.where(valid, y, 0), C).to(_table_dtype(h.dtype))
        s = (1 - label_smoothing) * onehot + label_smoothing / C
        s = torch.where(valid[:, None], s, torch.zeros_like(s))
    loss = correction(h, s)
    if not rows.soft:
        return _reference.reduce(loss, y, reduction, ignore_index, weight)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()
