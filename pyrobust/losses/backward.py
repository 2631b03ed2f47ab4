"""The backward correction (Patrini et al., Theorem 1) as a function and as an ``nn.Module``; the notation,
shapes and derivations are those of :mod:`pyrobust.losses.corrected`."""

from __future__ import annotations

import torch
from torch import nn

from pyrobust import _reference
from pyrobust._checks import (
    check_input_and_target,
    check_inverse,
    check_label_smoothing,
    check_weight,
)
from pyrobust._ops import _table_dtype, backward_loss
from pyrobust.losses._corrected_module import _CorrectedLoss
from pyrobust.losses._correction_checks import (
    _check_clip,
    _check_identity_mix,
    _check_same_device,
    _check_soft,
    _check_T_call,
)
from pyrobust.losses._rows import _Rows, _soft_loss
from pyrobust.losses._tables import _inverse, _smoothing_tables

__all__ = ["BackwardCorrectedLoss", "backward_corrected_cross_entropy"]


def backward_corrected_cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    T: torch.Tensor | None = None,
    *,
    T_inv: torch.Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    identity_mix: float = 0.0,
    clip: float = 0.0,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Backward-corrected cross-entropy (Patrini et al., Theorem 1): ``(T^{-1} (w l(h)))_y``.

    ``loss_i = sum_j T^{-1}[y_i, j] w_j (-log softmax(logits_i)_j)``, where ``l(h)`` is the vector of the C
    cross-entropies and ``w`` the class weights (all 1 by default). Unbiased: ``E_{y~ | y} loss(y~) =
    w_y CE(y)`` for noisy labels drawn from T. It may be negative, and where ``T^{-1}`` has negative entries
    it is unbounded below: a network can lower it without limit by driving ``softmax(h)_j -> 0`` for those
    classes. With ``identity_mix = lam`` the inverse is of ``(1 - lam) T + lam I`` (the remedy of the paper
    for an ill-conditioned T). With ``clip = eps > 0`` the probabilities are clipped to ``[eps, 1 - eps]``
    before the log (zero gradient where clipped), which bounds the loss; the authors' Keras code does this
    with ``eps = 1e-7``. The clipped loss is computed by the plain-PyTorch formula (``pyrobust._reference``),
    not the fused kernel. A drop-in for ``F.cross_entropy`` (:mod:`pyrobust.losses.corrected`): with
    ``T = I`` it is that. Label smoothing ``eps`` uses ``(1 - eps) T^{-1}[y] + eps mean_k T^{-1}[k]`` (fused,
    O(C) per row); class probabilities ``s``: ``sum_j (s_i T^{-1})_j w_j l_j`` (one (N, C) x (C, C) product).

    Hessians (Theorem 4): with ReLU networks the loss differs from plain cross-entropy only by a term
    linear in the logits, so its Hessian equals that of cross-entropy with respect to the logits and to
    the last layer's weights. It does *not* equal it with respect to all parameters: the noise term is
    bilinear in the weights of the last two layers, so their cross terms differ.

    Args:
        input: logits (C,), (N, C) or (N, C, d1, ..., dK), floating point (float16/bfloat16 run in float32
            on CPU).
        target: noisy class indices (), (N,) or (N, d1, ..., dK), int64 or uint8, or class probabilities of
            the input's shape, as :func:`forward_corrected_cross_entropy`.
        T: (C, C) row-stochastic transition matrix; the 1-norm condition number of
            ``(1 - identity_mix) T + identity_mix I`` (:func:`pyrobust.losses.condition_number`) must not
            exceed ``MAX_CONDITION_NUMBER`` (:func:`pyrobust.losses.identity_mix_for` finds a mix).
        T_inv: (C, C) inverse to use instead of T (pass one of the two); not checked for conditioning.
        reduction: ``"mean"`` (over non-ignored rows, or the sum of their weights), ``"sum"`` or ``"none"``.
        ignore_index: target value whose rows contribute 0 loss and 0 gradient.
        identity_mix: ``lam`` in [0, 1]; invert ``(1 - lam) T + lam I`` instead of T.
        clip: ``eps`` in [0, 0.5); 0 (default) is the exact, unclipped loss.
        weight: (C,) class weights, each on the term of its (clean) class; a mean divides by the summed
            weights of the observed labels, as ``F.cross_entropy``.
        label_smoothing: ``eps`` in [0, 1], as ``F.cross_entropy``'s.

    Returns:
        The reduced loss (scalar, in nats), or the input's shape without its class dimension for ``"none"``;
        in the logits' dtype (promoted with soft targets'), float32 under autocast.

    Raises:
        TypeError, DtypeError, ValueError, IndexError: bad logits, target, weight or reduction, as
            :func:`forward_corrected_cross_entropy`.
        ValueError: T is singular or ill-conditioned (condition number above ``MAX_CONDITION_NUMBER``; under
            ``torch.compile`` a ``RuntimeError``), both or neither of T and T_inv are given, identity_mix is
            given with T_inv, or identity_mix, clip or label_smoothing is out of range; T or T_inv is not a
            valid C x C matrix on the logits' device (also TypeError).
    """
    C, soft = check_input_and_target(input, target, reduction)
    identity_mix = _check_identity_mix(identity_mix)
    clip = _check_clip(clip)
    weight = check_weight(weight, C, input.device)
    label_smoothing = check_label_smoothing(label_smoothing)
    _check_soft(soft, ignore_index)
    if (T is None) == (T_inv is None):
        raise ValueError("pass exactly one of T and T_inv")
    if T_inv is None:
        T = _check_T_call(T, C, input)
        T_inv = _inverse(T, identity_mix)
    else:
        if identity_mix:
            raise ValueError("identity_mix applies to T; it cannot be combined with T_inv")
        if not torch.compiler.is_compiling():
            T_inv = check_inverse(T_inv, C)
        _check_same_device("T_inv", T_inv, input)
    rows = _Rows(input, target, soft)
    if soft:
        loss = _soft_loss(lambda h, s: _reference.backward_corrected_ce_soft(h, s, T_inv, weight, clip), rows, C,
                          label_smoothing, ignore_index, weight, reduction)
        return rows.finish(loss, reduction)
    table, offset = _smoothing_tables(T_inv, label_smoothing)
    loss = backward_loss(rows.logits, rows.target, table, reduction, ignore_index, weight=weight, offset=offset,
                         clip=clip)
    return rows.finish(loss, reduction)


class BackwardCorrectedLoss(_CorrectedLoss):
    """``nn.Module`` form of :func:`backward_corrected_cross_entropy`, a drop-in for ``nn.CrossEntropyLoss``.

    ``loss(input, target)`` with the shapes of ``nn.CrossEntropyLoss``. T (C x C) is validated (including
    its condition number, after mixing ``(1 - identity_mix) T + identity_mix I``) once, and held as the
    buffer ``T`` (``state_dict()["T"]``); ``T^{-1}`` (and, for label smoothing, its mean row) is derived
    from it as a non-persistent buffer and cast per device and dtype of the logits. ``load_state_dict`` with
    another T (or ``loss.T = T_new``) replaces it and re-derives ``T^{-1}`` (refusing an ill-conditioned
    one); ``.to(device)`` moves them. ``clip`` as in the function. Theorem 4 caveat: the Hessian equals that
    of plain cross-entropy w.r.t. the logits and the last layer's weights, not w.r.t. all parameters (see
    the function).

    Args:
        T: (C, C) row-stochastic transition matrix (copied in float64).
        reduction, ignore_index, identity_mix, clip, weight, label_smoothing: as in the function.

    Raises:
        At construction: TypeError, ValueError for a bad T, reduction, identity_mix, clip, weight or
        label_smoothing, and ValueError for a T whose 1-norm condition number after mixing exceeds
        ``MAX_CONDITION_NUMBER`` (paper, sec. 4.1: pass ``identity_mix=pyrobust.losses.identity_mix_for(T)``).
        At a call: as :class:`ForwardCorrectedLoss`.
    """

    _kind = "backward"

    def __init__(
        self,
        T: torch.Tensor,
        reduction: str = "mean",
        ignore_index: int = -100,
        identity_mix: float = 0.0,
        clip: float = 0.0,
        *,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        nn.Module.__setattr__(self, "identity_mix", _check_identity_mix(identity_mix))
        nn.Module.__setattr__(self, "clip", _check_clip(clip))
        super().__init__(T, reduction, ignore_index, weight=weight, label_smoothing=label_smoothing)

    def _derive(self) -> None:
        super()._derive()
        T = self._buffers["T"]
        T_inv = _inverse(T, self.identity_mix).to(T.dtype)
        self.register_buffer("T_inv", T_inv, persistent=False)

    def _check_new_T(self, T: torch.Tensor) -> None:
        _inverse(T.detach(), self.identity_mix)

    def _options(self) -> list[tuple[str, object]]:
        return [("identity_mix", self.identity_mix), ("clip", self.clip)]

    def _cast_tables(self, logits: torch.Tensor) -> tuple:
        """``T^{-1}`` as the kernels take it (scaled for label smoothing), its offset and the weights, in the
        kernels' dtype on the logits' device: cast and cached once."""
        key = (logits.device, _table_dtype(logits.dtype))
        tables = self._tables.get(key)
        if tables is None:
            table, offset = _smoothing_tables(self._buffers["T_inv"], self.label_smoothing)
            weight = self.weight
            tables = self._tables[key] = tuple(
                None if t is None else t.to(device=key[0], dtype=key[1]).contiguous() for t in (table, offset, weight)
            )
        return tables

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``input`` (logits) and ``target``, shaped as ``nn.CrossEntropyLoss``'s (class docstring)."""
        C, soft = self._check_call(input, target)
        rows = _Rows(input, target, soft)
        if soft:
            T_inv, weight, clip = self._buffers["T_inv"], self.weight, self.clip
            loss = _soft_loss(lambda h, s: _reference.backward_corrected_ce_soft(h, s, T_inv, weight, clip), rows, C,
                              self.label_smoothing, self.ignore_index, weight, self.reduction)
            return rows.finish(loss, self.reduction)
        table, offset, weight = self._cast_tables(rows.logits)
        loss = backward_loss(rows.logits, rows.target, table, self.reduction, self.ignore_index, weight=weight,
                             offset=offset, clip=self.clip)
        return rows.finish(loss, self.reduction)
