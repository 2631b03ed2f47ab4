"""Loss-corrected cross-entropies of Patrini et al. (CVPR 2017), section 4, on fused kernels.

Notation: logits ``h`` of shape (B, C), targets ``y`` (B,) int64 holding *noisy* labels, the transition
matrix ``T[i, j] = p(noisy = j | clean = i)`` (C x C, row-stochastic), ``p = softmax(h)``.

* Forward correction (eq. 5): ``loss_i = -log sum_j T[j, y_i] p_ij``, computed in log space as
  ``logsumexp(h_i) - logsumexp(h_i + log T[:, y_i])``: exact where T has zeros, no clipping.
* Backward correction (Theorem 1): ``loss_i = sum_j T^{-1}[y_i, j] (-log p_ij)``, unbiased: its
  expectation over noisy labels drawn from T equals the clean cross-entropy.

Each row costs O(C): it reads column ``y_i`` of T (forward) or row ``y_i`` of T^{-1} (backward) and
one pass over its logits yields both the loss and ``d loss_i / d h_i``. ``pyrobust.backend(device)``
says which implementation runs; see ``pyrobust._ops``. Inputs are checked by ``pyrobust._checks``, as in
every loss (the exception types of ``F.cross_entropy``); the backward correction refuses an ill-conditioned
T by the policy of :mod:`pyrobust.losses.conditioning` (paper, section 4.1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pyrobust._checks import check_inverse, check_logits_and_target, check_reduction, check_transition_matrix
from pyrobust._ops import _table_dtype, corrected_loss
from pyrobust.losses.conditioning import MAX_CONDITION_NUMBER, condition_number, identity_mix_for

__all__ = [
    "forward_corrected_cross_entropy",
    "backward_corrected_cross_entropy",
    "ForwardCorrectedLoss",
    "BackwardCorrectedLoss",
]


# --- validation of what only these losses take ------------------------------------------------------


def _check_same_device(name: str, M: torch.Tensor, logits: torch.Tensor) -> None:
    if M.device != logits.device:
        raise ValueError(f"logits are on {logits.device} but {name} is on {M.device}")


def _check_clip(clip: float) -> float:
    if not 0.0 <= clip < 0.5:
        raise ValueError(f"clip must lie in [0, 0.5), got {clip}")
    return float(clip)


def _check_identity_mix(identity_mix: float) -> float:
    if not 0.0 <= identity_mix <= 1.0:
        raise ValueError(f"identity_mix must lie in [0, 1], got {identity_mix}")
    return float(identity_mix)


# --- derived tables -------------------------------------------------------------------------------


def _log_T_t(T: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``log T`` transposed, so that column y of T (all a row needs) is one contiguous row; log 0 = -inf."""
    return T.to(torch.float64).log().t().to(dtype).contiguous()


def _inverse(T: torch.Tensor, identity_mix: float) -> torch.Tensor:
    """``((1 - identity_mix) T + identity_mix I)^{-1}`` in float64, refusing a singular or ill-conditioned T
    (:func:`~pyrobust.losses.conditioning.condition_number` above ``MAX_CONDITION_NUMBER``)."""
    T = T.to(torch.float64)
    if identity_mix:
        T = (1 - identity_mix) * T + identity_mix * torch.eye(T.shape[0], dtype=T.dtype, device=T.device)
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


def forward_corrected_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    T: torch.Tensor,
    reduction: str = "mean",
    *,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Forward-corrected cross-entropy (Patrini et al., eq. 5): ``-log (T^T softmax(h))_y``.

    ``loss_i = -log sum_j T[j, y_i] softmax(logits_i)_j = logsumexp(h_i) - logsumexp(h_i + log T[:, y_i])``,
    computed in log space: exact where T has zeros, no probability clipping. If column ``y_i`` of T is
    all zero (label ``y_i`` cannot be observed under T) the loss is ``+inf``.

    Args:
        logits: (B, C) float tensor (float32/float64; float16/bfloat16 run in float32 on CPU).
        target: (B,) int64 noisy labels in ``[0, C)`` or ``ignore_index``.
        T: (C, C) row-stochastic ``T[i, j] = p(noisy = j | clean = i)``, on the logits' device.
        reduction: ``"mean"`` (over non-ignored rows, like ``F.cross_entropy``), ``"sum"`` or ``"none"``.
        ignore_index: target value whose rows contribute 0 loss and 0 gradient.

    Returns:
        The reduced loss (scalar, in nats), or (B,) for ``"none"``; float64 for float64 logits, else float32.

    Raises:
        TypeError, DtypeError, ValueError: bad logits, target or reduction, as
            :func:`pyrobust._checks.check_logits_and_target` (the exception types of ``F.cross_entropy``).
        IndexError: a target outside ``[0, C)`` that is not ``ignore_index`` (on CUDA the compiled kernel
            stops with a device-side assertion instead, as ``F.cross_entropy`` does).
        TypeError, ValueError: T is not a valid transition matrix (:func:`pyrobust.check_transition_matrix`),
            or not on the logits' device.
    """
    num_classes = check_logits_and_target(logits, target, reduction)
    T = check_transition_matrix(T, num_classes)
    _check_same_device("T", T, logits)
    return corrected_loss("forward", logits, target, _log_T_t(T, _table_dtype(logits.dtype)), reduction, ignore_index)


def backward_corrected_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    T: torch.Tensor | None = None,
    *,
    T_inv: torch.Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    identity_mix: float = 0.0,
    clip: float = 0.0,
) -> torch.Tensor:
    """Backward-corrected cross-entropy (Patrini et al., Theorem 1): ``(T^{-1} l(h))_y``.

    ``loss_i = sum_j T^{-1}[y_i, j] (-log softmax(logits_i)_j)``, where ``l(h)`` is the vector of the C
    cross-entropies. Unbiased: ``E_{y~ | y} loss(y~) = CE(y)`` for noisy labels drawn from T. It may be
    negative, and where ``T^{-1}`` has negative entries it is unbounded below: a network can lower it
    without limit by driving ``softmax(h)_j -> 0`` for those classes. With ``identity_mix = lam`` the
    inverse is of ``(1 - lam) T + lam I`` (the remedy of the paper for an ill-conditioned T). With
    ``clip = eps > 0`` the probabilities are clipped to ``[eps, 1 - eps]`` before the log (zero gradient
    where clipped), which bounds the loss; the authors' Keras code does this with ``eps = 1e-7``. The
    clipped loss is computed by the plain-PyTorch formula (``pyrobust._reference``), not the fused kernel.

    Hessians (Theorem 4): with ReLU networks the loss differs from plain cross-entropy only by a term
    linear in the logits, so its Hessian equals that of cross-entropy with respect to the logits and to
    the last layer's weights. It does *not* equal it with respect to all parameters: the noise term is
    bilinear in the weights of the last two layers, so their cross terms differ.

    Args:
        logits: (B, C) float tensor (float32/float64; float16/bfloat16 run in float32 on CPU).
        target: (B,) int64 noisy labels in ``[0, C)`` or ``ignore_index``.
        T: (C, C) row-stochastic transition matrix; the 2-norm condition number of
            ``(1 - identity_mix) T + identity_mix I`` (:func:`pyrobust.losses.condition_number`) must not
            exceed ``MAX_CONDITION_NUMBER`` (1e4; :func:`pyrobust.losses.identity_mix_for` finds a mix).
        T_inv: (C, C) inverse to use instead of T (pass one of the two); not checked for conditioning.
        reduction: ``"mean"`` (over non-ignored rows), ``"sum"`` or ``"none"``.
        ignore_index: target value whose rows contribute 0 loss and 0 gradient.
        identity_mix: ``lam`` in [0, 1]; invert ``(1 - lam) T + lam I`` instead of T.
        clip: ``eps`` in [0, 0.5); 0 (default) is the exact, unclipped loss.

    Returns:
        The reduced loss (scalar, in nats), or (B,) for ``"none"``; float64 for float64 logits, else float32.

    Raises:
        TypeError, DtypeError, ValueError, IndexError: bad logits, target or reduction, as
            :func:`forward_corrected_cross_entropy`.
        ValueError: T is singular or ill-conditioned (condition number above ``MAX_CONDITION_NUMBER``), both
            or neither of T and T_inv are given, identity_mix is given with T_inv, or identity_mix or clip
            is out of range; T or T_inv is not a valid C x C matrix on the logits' device (also TypeError).
    """
    num_classes = check_logits_and_target(logits, target, reduction)
    identity_mix = _check_identity_mix(identity_mix)
    clip = _check_clip(clip)
    if (T is None) == (T_inv is None):
        raise ValueError("pass exactly one of T and T_inv")
    if T_inv is None:
        T = check_transition_matrix(T, num_classes)
        _check_same_device("T", T, logits)
        T_inv = _inverse(T, identity_mix)
    else:
        if identity_mix:
            raise ValueError("identity_mix applies to T; it cannot be combined with T_inv")
        T_inv = check_inverse(T_inv, num_classes)
        _check_same_device("T_inv", T_inv, logits)
    return corrected_loss("backward", logits, target, T_inv, reduction, ignore_index, clip)


# --- modules ------------------------------------------------------------------------------------------


class _CorrectedLoss(nn.Module):
    """Shared by the two modules: T checked once, its derived table cached per (device, dtype)."""

    _kind: str
    #: probability clip of the backward correction (``BackwardCorrectedLoss(clip=...)``); the forward
    #: correction is always exact
    clip: float = 0.0

    def __init__(self, T: torch.Tensor, reduction: str = "mean", ignore_index: int = -100) -> None:
        super().__init__()
        check_reduction(reduction)
        # A fixed hyper-parameter, kept out of the state_dict so no load can change it under the cache.
        self._T = check_transition_matrix(T).detach().to(torch.float64).clone()
        self.reduction = reduction
        self.ignore_index = int(ignore_index)
        self._tables: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def T(self) -> torch.Tensor:
        """The transition matrix ``T[i, j] = p(noisy = j | clean = i)`` (C x C, float64, a copy)."""
        return self._T.clone()

    def _derive(self, T: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _table(self, logits: torch.Tensor) -> torch.Tensor:
        key = (logits.device, _table_dtype(logits.dtype))
        table = self._tables.get(key)
        if table is None:
            table = self._derive(self._T).to(device=key[0], dtype=key[1]).contiguous()
            self._tables[key] = table
        return table

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        num_classes = check_logits_and_target(logits, target, self.reduction)
        if num_classes != self._T.shape[0]:
            raise ValueError(f"T is {self._T.shape[0]} x {self._T.shape[0]} but the logits have {num_classes} classes")
        return corrected_loss(
            self._kind, logits, target, self._table(logits), self.reduction, self.ignore_index, self.clip
        )

    def extra_repr(self) -> str:
        return f"num_classes={self._T.shape[0]}, reduction={self.reduction!r}, ignore_index={self.ignore_index}"


class ForwardCorrectedLoss(_CorrectedLoss):
    """``nn.Module`` form of :func:`forward_corrected_cross_entropy`, in the manner of ``nn.CrossEntropyLoss``.

    ``loss(logits (B, C), target (B,))``; T (C x C) is validated once and ``log T^T`` cached per device and
    dtype of the logits.

    Args:
        T: (C, C) row-stochastic ``T[i, j] = p(noisy = j | clean = i)`` (copied in float64).
        reduction, ignore_index: as in the function.

    Raises:
        At construction: TypeError, ValueError for a bad T or reduction. At a call: what the function raises
        for bad logits or targets, and ValueError if the logits do not have C classes.
    """

    _kind = "forward"

    def _derive(self, T: torch.Tensor) -> torch.Tensor:
        return _log_T_t(T, torch.float64)


class BackwardCorrectedLoss(_CorrectedLoss):
    """``nn.Module`` form of :func:`backward_corrected_cross_entropy`, in the manner of ``nn.CrossEntropyLoss``.

    ``loss(logits (B, C), target (B,))``; T (C x C) is validated (including its condition number, after
    mixing ``(1 - identity_mix) T + identity_mix I``) once at construction, and ``T^{-1}`` cached per
    device and dtype; ``clip`` as in the function. Theorem 4 caveat: the Hessian equals that of plain
    cross-entropy w.r.t. the logits and the last layer's weights, not w.r.t. all parameters (see the
    function).

    Args:
        T: (C, C) row-stochastic transition matrix (copied in float64).
        reduction, ignore_index, identity_mix, clip: as in the function.

    Raises:
        At construction: TypeError, ValueError for a bad T, reduction, identity_mix or clip, and ValueError
        for a T whose 2-norm condition number after mixing exceeds ``MAX_CONDITION_NUMBER`` (paper, sec.
        4.1: pass ``identity_mix=pyrobust.losses.identity_mix_for(T)``). At a call: as
        :class:`ForwardCorrectedLoss`.
    """

    _kind = "backward"

    def __init__(
        self,
        T: torch.Tensor,
        reduction: str = "mean",
        ignore_index: int = -100,
        identity_mix: float = 0.0,
        clip: float = 0.0,
    ) -> None:
        super().__init__(T, reduction, ignore_index)
        self.identity_mix = _check_identity_mix(identity_mix)
        self.clip = _check_clip(clip)
        self._T_inv = _inverse(self._T, self.identity_mix)

    def _derive(self, T: torch.Tensor) -> torch.Tensor:
        return self._T_inv

