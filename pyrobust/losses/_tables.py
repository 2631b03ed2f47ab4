"""The tables the corrected losses derive from T: ``log T^T`` (forward), ``T^{-1}`` refusing an ill-conditioned T
(backward), its label-smoothing form, and the free logits of a learnable T."""

from __future__ import annotations

import math

import torch

from pyrobust.losses.conditioning import (
    MAX_CONDITION_NUMBER,
    condition_number,
    identity_mix_for,
)


def _log_T_t(T: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``log T`` transposed, so that column y of T (all a row needs) is one contiguous row; log 0 = -inf."""
    return T.to(torch.float64).log().t().to(dtype).contiguous()


def _inverse(T: torch.Tensor, identity_mix: float) -> torch.Tensor:
    """``((1 - identity_mix) T + identity_mix I)^{-1}`` in float64, refusing a singular or ill-conditioned T
    (:func:`~pyrobust.losses.conditioning.condition_number` above ``MAX_CONDITION_NUMBER``). Under
    ``torch.compile`` the refusal is a device-side assertion (``RuntimeError``)."""
    T = T.to(torch.float64)
    if identity_mix:
        T = (1 - identity_mix) * T + identity_mix * torch.eye(T.shape[0], dtype=T.dtype, device=T.device)
    if torch.compiler.is_compiling():
        T_inv, info = torch.linalg.inv_ex(T)
        Td, T_inv_d = T.detach(), T_inv.detach()
        cond = torch.linalg.matrix_norm(Td, 1) * torch.linalg.matrix_norm(T_inv_d, 1)
        torch._assert_async(
            (info == 0) & (cond <= MAX_CONDITION_NUMBER),
            f"T is singular or ill-conditioned (1-norm condition number > {MAX_CONDITION_NUMBER:g}): mix it with "
            "the identity (identity_mix=pyrobust.losses.identity_mix_for(T))",
        )
        return T_inv
    cond = condition_number(T)  # detached: autograd to T (for learning T) goes through the inverse alone
    if not cond <= MAX_CONDITION_NUMBER:
        what = "singular" if math.isinf(cond) else "ill-conditioned"
        raise ValueError(
            f"T is {what} (1-norm condition number {cond:.3g} > {MAX_CONDITION_NUMBER:g}): the backward "
            "correction multiplies the loss by T^-1 and would amplify noise. Mix T with the identity, "
            f"the remedy of Patrini et al. (sec. 4.1): identity_mix={identity_mix_for(T):g} is the smallest "
            "that brings it under the limit (pyrobust.losses.identity_mix_for(T)), or use the forward "
            "correction, which needs no inverse"
        )
    return torch.linalg.inv(T)


def _smoothing_tables(T_inv: torch.Tensor, label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The backward correction's table and offset for label smoothing ``eps``: the smoothed target
    ``(1 - eps) e_y + eps / C`` turns row y of ``T^{-1}`` into ``(1 - eps) T^{-1}[y] + eps mean_k T^{-1}[k]``."""
    if not label_smoothing:
        return T_inv, None
    return (1 - label_smoothing) * T_inv, label_smoothing * T_inv.mean(dim=0)


#: Where a learnable T starts at a zero of T: a logit whose exp is 0 in float32 and float64 (so softmax gives
#: T exactly), yet finite, so that weight decay or an optimiser's arithmetic never meets inf - inf.
LOG_ZERO = -1000.0


def _free_logits(T: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The free logits of a learnable T, ``log T`` (``LOG_ZERO`` at its zeros), in ``dtype``, stored
    column-major: their transpose, what the kernels read, is contiguous."""
    logits = T.to(torch.float64).log().clamp_min(LOG_ZERO).to(dtype)
    return logits.t().contiguous().t()
