"""The corrected cross-entropies in plain PyTorch: the oracle of the tests and the explicit fallback.

For logits ``h`` (B, C), targets ``y`` (B,), class weights ``w`` (C,; all 1 without them) and
``lse(v) = log sum_j exp(v_j)``:

* forward correction (paper eq. 5), in log space so that zeros of ``T`` are exact (``log 0 = -inf``)::

      loss_i = -w[y_i] log sum_j T[j, y_i] softmax(h_i)_j = w[y_i] (lse(h_i) - lse(h_i + log T[:, y_i]))

* backward correction (Theorem 1), the weight of each class on its own term::

      loss_i = sum_j w_j (T^{-1}[y_i, j] + offset_j) (-log softmax(h_i)_j)

  (``offset``: label smoothing's share, see :mod:`pyrobust.losses.corrected`); a term whose coefficient
  is 0 is 0 whatever ``h_ij``, so a masked class (logit ``-inf``) adds nothing rather than ``0 * inf``.

* with class-probability targets ``s`` (B, C) (also what label smoothing makes of a class index):
  :func:`forward_corrected_ce_soft`, ``-sum_k w_k s_k log (T^T softmax(h))_k``, O(C^2) per row, and
  :func:`backward_corrected_ce_soft`, ``sum_j w_j (s T^{-1})_j (-log softmax(h)_j)``.

All take the tables the compiled ops take (``log_T_t[y, j] = log T[j, y]``; ``T_inv``), return the
per-row loss (B,) in float64 for float64 logits and float32 otherwise, with 0 for rows whose target is
``ignore_index``, and are differentiated by autograd (w.r.t. the tables too, and twice, but for
:func:`forward_corrected_ce_T`). They check their logits and targets as every loss of pyrobust does
(``pyrobust._checks``); :func:`reduce` reduces their rows as ``F.cross_entropy`` does.
"""

from __future__ import annotations

import math

import torch

from pyrobust._checks import check_logits_and_target, check_reduction, check_targets


def _loss_dtype(logits: torch.Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _rows(logits: torch.Tensor, target: torch.Tensor, table: torch.Tensor, ignore_index: int):
    """Logits in the loss dtype, the table row of each target (rows of ignored targets: 0), the mask and the
    targets (int64, ignored ones 0), after checking the logits and targets."""
    check_targets(target, check_logits_and_target(logits, target), ignore_index)
    logits = logits.to(_loss_dtype(logits))
    valid = target != ignore_index
    y = torch.where(valid, target.long(), 0)
    rows = table.to(logits.dtype)[y]
    return logits, torch.where(valid[:, None], rows, torch.zeros_like(rows)), valid, y


def _row_weight(weight: torch.Tensor | None, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    return None if weight is None else weight.to(dtype)[y]


def forward_corrected_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    log_T_t: torch.Tensor,
    ignore_index: int = -100,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-row forward-corrected cross-entropy (paper, eq. 5) ``w[y_i] (lse(h_i) - lse(h_i + log T[:, y_i]))``.

    Args:
        logits: (B, C) floating point (computed in float32, or float64 for float64 logits).
        target: (B,) int64 (or uint8) classes in ``[0, C)`` or ``ignore_index``.
        log_T_t: (C, C) ``log T`` transposed (``-inf`` where T is 0).
        ignore_index: target value of rows whose loss is 0.
        weight: (C,) class weights, or None; row i is weighed by that of its (noisy) label ``y_i``.

    Returns:
        (B,) losses in nats.

    Raises:
        TypeError, DtypeError, ValueError, IndexError: bad logits or targets (``pyrobust._checks``).
    """
    logits, log_T_col, valid, y = _rows(logits, target, log_T_t, ignore_index)
    loss = torch.logsumexp(logits, dim=1) - torch.logsumexp(logits + log_T_col, dim=1)
    w = _row_weight(weight, y, loss.dtype)
    if w is not None:
        loss = w * loss
    return torch.where(valid, loss, torch.zeros_like(loss))


class _ShiftedLogSumExp(torch.autograd.Function):
    """``lse_j(h_j + log t_j)`` per row, differentiable with respect to ``t`` itself (not its log): the
    gradient ``exp(h_j - lse)`` is the true one where ``t_j = 0`` too, where ``d lse / d log t_j = 0`` times
    ``d log t_j / d t_j = inf`` would make NaN."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = torch.logsumexp(h + t.log(), dim=1)
        ctx.save_for_backward(h, t, out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, t, out = ctx.saved_tensors
        ratio = torch.exp(h - out[:, None])  # p_j / q: d out / d t_j
        return grad[:, None] * ratio * t, grad[:, None] * ratio


def forward_corrected_ce_T(
    logits: torch.Tensor,
    target: torch.Tensor,
    T: torch.Tensor,
    ignore_index: int = -100,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`forward_corrected_ce` from T itself (C x C, row-stochastic), differentiable once with respect
    to T, exactly also where T has zeros: ``d loss_i / d T[j, y_i] = -w[y_i] softmax(h_i)_j / q_i`` with
    ``q_i = sum_j T[j, y_i] softmax(h_i)_j``. Shapes, dtypes and errors as :func:`forward_corrected_ce`."""
    check_targets(target, check_logits_and_target(logits, target), ignore_index)
    logits = logits.to(_loss_dtype(logits))
    valid = target != ignore_index
    y = torch.where(valid, target.long(), 0)
    T_col = T.to(logits.dtype).t()[y]
    T_col = torch.where(valid[:, None], T_col, torch.ones_like(T_col))
    loss = torch.logsumexp(logits, dim=1) - _ShiftedLogSumExp.apply(logits, T_col)
    w = _row_weight(weight, y, loss.dtype)
    if w is not None:
        loss = w * loss
    return torch.where(valid, loss, torch.zeros_like(loss))


def backward_corrected_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    T_inv: torch.Tensor,
    ignore_index: int = -100,
    clip: float = 0.0,
    weight: torch.Tensor | None = None,
    offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-row backward-corrected cross-entropy (Theorem 1) ``sum_j w_j (T_inv[y_i, j] + offset_j)
    (-log_softmax(h_i)_j)``.

    With ``clip > 0`` the probabilities are clipped to ``[clip, 1 - clip]`` before the log (zero gradient
    where clipped), as in the authors' Keras code. Without it, a term whose coefficient is 0 is 0 even
    where ``h_ij = -inf`` (its limit), not ``0 * inf``.

    Args:
        logits: (B, C) floating point (computed in float32, or float64 for float64 logits).
        target: (B,) int64 (or uint8) classes in ``[0, C)`` or ``ignore_index``.
        T_inv: (C, C) inverse of the (possibly identity-mixed) transition matrix.
        ignore_index: target value of rows whose loss is 0.
        clip: probability clip ``eps`` in ``[0, 0.5)``; 0 for the exact loss.
        weight: (C,) class weights, each on the term of its class, or None.
        offset: (C,) added to every row of ``T_inv``, or None.

    Returns:
        (B,) losses in nats (negative values possible).

    Raises:
        TypeError, DtypeError, ValueError, IndexError: bad logits or targets (``pyrobust._checks``).
    """
    logits, T_inv_row, valid, _ = _rows(logits, target, T_inv, ignore_index)
    if offset is not None:
        T_inv_row = T_inv_row + offset.to(logits.dtype)
    if weight is not None:
        T_inv_row = T_inv_row * weight.to(logits.dtype)
    log_p = _log_p(logits, T_inv_row, clip)
    loss = -(T_inv_row * log_p).sum(dim=1)
    return torch.where(valid, loss, torch.zeros_like(loss))


def _log_p(logits: torch.Tensor, coefficients: torch.Tensor, clip: float) -> torch.Tensor:
    """``log_softmax(logits)``, clipped to ``[log clip, log(1 - clip)]`` if ``clip``; else 0 where it is
    ``-inf`` and the coefficient it will be multiplied by is 0 (a masked class: 0 * -inf would be NaN, its
    limit is 0; NaN, from a NaN or +inf logit, stays)."""
    log_p = torch.log_softmax(logits, dim=1)
    if clip:
        return log_p.clamp(math.log(clip), math.log1p(-clip))
    return torch.where((coefficients == 0) & torch.isneginf(log_p), torch.zeros_like(log_p), log_p)


#: ``(T^T softmax(h))_k`` below this (in float64) is recomputed exactly in log space.
_TINY = 1e-280


def forward_corrected_ce_soft(
    logits: torch.Tensor, probs: torch.Tensor, T: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-row forward correction of class-probability targets: ``-sum_k w_k s_k log (T^T softmax(h))_k``.

    Every entry of ``q = T^T softmax(h)`` may be needed: O(C^2) per row (a (B, C) x (C, C) product in
    float64), against O(C) for class indices. Exact in log space: ``log q_k = log (T^T e)_k + max h -
    lse(h)`` with ``e = exp(h - max h)`` in float64 (zeros of T add exactly 0; logits of +-120 lose nothing),
    and the rare entries whose product underflows float64 are recomputed as ``lse_j(h_j + log T[j, k]) -
    lse(h)`` (eagerly; not under ``torch.compile``). Terms with ``s_k = 0`` are 0, even where ``q_k = 0``.

    Args:
        logits: (B, C) floating point.
        probs: (B, C) class probabilities (rows need not sum to 1: ``F.cross_entropy`` does not ask it).
        T: (C, C) row-stochastic transition matrix (differentiable).
        weight: (C,) class weights, or None: ``w_k`` weighs the term of class ``k``.

    Returns:
        (B,) losses in nats, in the promoted dtype of ``logits`` and ``probs`` (float32 at least).
    """
    dtype = torch.promote_types(_loss_dtype(logits), probs.dtype)
    h = logits.to(torch.float64)
    m = h.amax(dim=1, keepdim=True).detach()
    lse = torch.logsumexp(h, dim=1, keepdim=True)
    T64 = T.to(torch.float64)
    E = torch.exp(h - m) @ T64
    needed = probs > 0
    log_q = torch.log(torch.where(needed, E, torch.ones_like(E))) + m - lse
    if not torch.compiler.is_compiling():
        low = needed & (E < _TINY) & torch.isfinite(m)
        if bool(low.any()):
            i, k = low.nonzero(as_tuple=True)
            exact = torch.logsumexp(h[i] + T64.log().t()[k], dim=1) - lse[i, 0]
            log_q = log_q.index_put((i, k), exact)
    s = probs.to(torch.float64)
    if weight is not None:
        s = s * weight.to(torch.float64)
    return -(s * log_q).sum(dim=1).to(dtype)


def backward_corrected_ce_soft(
    logits: torch.Tensor,
    probs: torch.Tensor,
    T_inv: torch.Tensor,
    weight: torch.Tensor | None = None,
    clip: float = 0.0,
) -> torch.Tensor:
    """Per-row backward correction of class-probability targets: ``sum_j w_j (s T^{-1})_j (-log softmax(h)_j)``.

    The expectation of the class-index loss under ``s`` (a (B, C) x (C, C) product, then O(C) per row).
    ``clip`` as in :func:`backward_corrected_ce`. Shapes as :func:`forward_corrected_ce_soft`.
    """
    dtype = torch.promote_types(_loss_dtype(logits), probs.dtype)
    h = logits.to(dtype)
    coefficients = probs.to(dtype) @ T_inv.to(dtype)
    if weight is not None:
        coefficients = coefficients * weight.to(dtype)
    return -(coefficients * _log_p(h, coefficients, clip)).sum(dim=1)


def reduce(
    loss: torch.Tensor,
    target: torch.Tensor,
    reduction: str,
    ignore_index: int = -100,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce per-row losses (B,) of class-index targets as ``F.cross_entropy`` does.

    ``"none"``: ``loss`` itself; ``"sum"``: its sum; ``"mean"``: the sum over the number of rows whose target
    is not ``ignore_index`` (ignored rows hold 0), nan (0 / 0) with a zero gradient when every row is
    ignored; with ``weight``, over the sum of the weights of those rows' classes instead.

    Args:
        loss: (B,) floating point per-row losses.
        target: (B,) int64 targets (only compared with ``ignore_index``).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        ignore_index: target value of the rows that do not count in a mean.
        weight: (C,) class weights, or None.

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
    valid = target != ignore_index
    if weight is not None:
        w = torch.where(valid, weight.to(loss.dtype)[torch.where(valid, target.long(), 0)], 0)
        return loss.sum() / w.sum()
    count = valid.sum().to(loss.dtype)
    return torch.where(count > 0, loss.sum() / count.clamp_min(1), torch.nan)
