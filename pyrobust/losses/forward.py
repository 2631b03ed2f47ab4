"""The forward correction (Patrini et al., eq. 5) as a function and as an ``nn.Module``, with an optionally
learnable T; the notation, shapes and derivations are those of :mod:`pyrobust.losses.corrected`."""

from __future__ import annotations

import torch
from torch import nn

from pyrobust import _reference
from pyrobust._checks import (
    check_input_and_target,
    check_label_smoothing,
    check_transition_matrix,
    check_weight,
)
from pyrobust._ops import _table_dtype, forward_loss, learnable_forward_loss
from pyrobust.losses._corrected_module import _CorrectedLoss
from pyrobust.losses._correction_checks import _check_soft, _check_T_call
from pyrobust.losses._rows import _Rows, _soft_loss
from pyrobust.losses._tables import _free_logits, _log_T_t

__all__ = ["ForwardCorrectedLoss", "forward_corrected_cross_entropy"]


def forward_corrected_cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    T: torch.Tensor,
    reduction: str = "mean",
    *,
    ignore_index: int = -100,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Forward-corrected cross-entropy (Patrini et al., eq. 5): ``-w_y log (T^T softmax(h))_y``.

    ``loss_i = -w[y_i] log sum_j T[j, y_i] softmax(h_i)_j = w[y_i] (logsumexp(h_i) - logsumexp(h_i + log
    T[:, y_i]))``, computed in log space: exact where T has zeros, no probability clipping. If column
    ``y_i`` of T is all zero (label ``y_i`` cannot be observed under T) the loss is ``+inf``. A drop-in for
    ``F.cross_entropy`` (:mod:`pyrobust.losses.corrected`): with ``T = I`` it is that. Class probabilities
    ``s`` (and label smoothing, which makes them): ``loss_i = -sum_k w_k s_ik log (T^T softmax(h_i))_k``,
    O(C^2) per row (class indices: O(C), fused).

    Args:
        input: logits (C,), (N, C) or (N, C, d1, ..., dK), floating point (float16/bfloat16 run in float32
            on CPU).
        target: noisy class indices (), (N,) or (N, d1, ..., dK), int64 or uint8, in ``[0, C)`` or
            ``ignore_index``; or class probabilities of the input's shape (floating point).
        T: (C, C) row-stochastic ``T[i, j] = p(noisy = j | clean = i)``, on the logits' device. If it requires
            grad the loss is differentiated with respect to it (on CPU in the fused pass; exact at zeros
            of T): pass ``softmax(theta, dim=1)`` to learn T, as :class:`ForwardCorrectedLoss` with
            ``learnable=True`` does.
        reduction: ``"mean"`` (over non-ignored rows, or the sum of their weights; over all rows for class
            probabilities, like ``F.cross_entropy``), ``"sum"`` or ``"none"``.
        ignore_index: target value whose rows contribute 0 loss and 0 gradient (class indices only).
        weight: (C,) class weights (any float dtype), or None: row i is weighed by ``weight[y_i]``, the
            weight of its observed label (:mod:`pyrobust.losses.corrected`).
        label_smoothing: ``eps`` in [0, 1]: the target becomes ``(1 - eps) e_y + eps / C`` (O(C^2) per row).

    Returns:
        The reduced loss (scalar, in nats), or the input's shape without its class dimension for ``"none"``;
        in the logits' dtype (promoted with soft targets'), float32 under autocast.

    Raises:
        TypeError, DtypeError, ValueError: bad logits, target, weight or reduction, as
            :func:`pyrobust._checks.check_input_and_target` (the exception types of ``F.cross_entropy``; a
            float target of class indices gets a ``DtypeError`` that says ``.long()``).
        IndexError: a target outside ``[0, C)`` that is not ``ignore_index`` (on CUDA the compiled kernel
            stops with a device-side assertion instead, as ``F.cross_entropy`` does).
        TypeError, ValueError: T is not a valid transition matrix (:func:`pyrobust.check_transition_matrix`),
            or not on the logits' device; label_smoothing outside [0, 1]; ignore_index with class
            probabilities. Under ``torch.compile`` an invalid T is a ``RuntimeError`` (a device-side assertion).
    """
    C, soft = check_input_and_target(input, target, reduction)
    T = _check_T_call(T, C, input)
    weight = check_weight(weight, C, input.device)
    label_smoothing = check_label_smoothing(label_smoothing)
    _check_soft(soft, ignore_index)
    rows = _Rows(input, target, soft)
    if soft or label_smoothing:
        loss = _soft_loss(lambda h, s: _reference.forward_corrected_ce_soft(h, s, T, weight), rows, C, label_smoothing,
                          ignore_index, weight, reduction)
        return rows.finish(loss, reduction)
    dtype = _table_dtype(rows.logits.dtype)
    if T.requires_grad:  # the gradient with respect to T itself, exact at its zeros
        loss = forward_loss(rows.logits, rows.target, _log_T_t(T.detach(), dtype), reduction, ignore_index,
                            T_t=T.t().to(dtype), weight=weight)
    else:
        loss = forward_loss(rows.logits, rows.target, _log_T_t(T, dtype), reduction, ignore_index, weight=weight)
    return rows.finish(loss, reduction)


class ForwardCorrectedLoss(_CorrectedLoss):
    """``nn.Module`` form of :func:`forward_corrected_cross_entropy`, a drop-in for ``nn.CrossEntropyLoss``.

    ``loss(input, target)`` with the shapes of ``nn.CrossEntropyLoss`` (:mod:`pyrobust.losses.corrected`).
    T (C x C) is validated once and held as the buffer ``T`` (``state_dict()["T"]``); ``log T^T`` is derived
    from it (a non-persistent buffer) and cast per device and dtype of the logits, with ``exp`` of the cast
    table, the cache that makes the CPU kernel's forward correction one exp per logit. ``load_state_dict`` with another
    T (or ``loss.T = T_new``) replaces it and re-derives them; ``.to(device)`` moves them.

    Learnable T (``learnable=True``, as T-Revision and VolMinNet train it): T is the row-softmax of the
    parameter ``T_logits`` (C x C, float32 like a model's parameters, ``.double()`` for float64; initialised
    at ``log T``, ``LOG_ZERO`` where T is 0, so that it starts at T to float32 precision, with its zeros exact);
    ``loss.T`` is that row-stochastic matrix (differentiable) and ``state_dict()`` holds ``T_logits`` and,
    under ``T``, the matrix. Hand ``loss.parameters()`` to the optimiser. One fused op
    (``torch.ops.pyrobust.forward_corrected_ce_learnable``) computes the loss and its gradients for the logits
    and ``T_logits`` in one pass over the batch: O(C) per row (row i touches only column ``y_i`` of T),
    accumulated by target class (the same bits for any number of threads), plus O(C^2) per call for the
    softmax of ``T_logits`` and its backward (at C = 10,000, 10^8 entries, that dominates); on CPU, elsewhere
    the reference runs. A per-row loss (``reduction="none"``) recomputes the pass in the backward. Class
    probabilities and label smoothing differentiate through the O(C^2) plain-PyTorch path.

    Args:
        T: (C, C) row-stochastic ``T[i, j] = p(noisy = j | clean = i)`` (copied in float64).
        reduction, ignore_index, weight, label_smoothing: as in the function (``weight`` a buffer).
        learnable: hold T as the parameter ``T_logits`` (above).

    Raises:
        At construction: TypeError, ValueError for a bad T, reduction, weight or label_smoothing. At a call:
        what the function raises for bad logits or targets, and ValueError if the logits do not have C
        classes.
    """

    _kind = "forward"

    def __init__(
        self,
        T: torch.Tensor,
        reduction: str = "mean",
        ignore_index: int = -100,
        *,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        learnable: bool = False,
    ) -> None:
        nn.Module.__setattr__(self, "learnable", bool(learnable))
        super().__init__(T, reduction, ignore_index, weight=weight, label_smoothing=label_smoothing)

    def _init_T(self, T: torch.Tensor) -> None:
        if not self.learnable:
            super()._init_T(T)
            return
        self.T_logits = nn.Parameter(_free_logits(T, torch.float32))

    def _derive(self) -> None:
        super()._derive()
        if not self.learnable:
            T = self._buffers["T"]
            self.register_buffer("log_T_t", _log_T_t(T, T.dtype), persistent=False)

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.learnable:  # the matrix too, under the key every checkpoint has it
            T = self.T
            destination[prefix + "T"] = T if keep_vars else T.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        if not self.learnable:
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                          unexpected_keys, error_msgs)
            return
        key, logits_key = prefix + "T", prefix + "T_logits"
        if logits_key not in state_dict and key in state_dict:
            # a fixed T's checkpoint: the learnable T restarts from it
            T = check_transition_matrix(state_dict[key], self.num_classes)
            state_dict = dict(state_dict)
            state_dict[logits_key] = _free_logits(T.detach(), self.T_logits.dtype)
        nn.Module._load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                                        unexpected_keys, error_msgs)
        if key in unexpected_keys:
            unexpected_keys.remove(key)

    def _options(self) -> list[tuple[str, object]]:
        return [("learnable", self.learnable)]

    def _fixed_tables(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log T^T`` in the kernels' dtype on the logits' device, and its exp: cast and cached once."""
        key = (logits.device, _table_dtype(logits.dtype))
        tables = self._tables.get(key)
        if tables is None:
            log_T_t = self._buffers["log_T_t"].to(device=key[0], dtype=key[1]).contiguous()
            tables = self._tables[key] = (log_T_t, log_T_t.exp())
        return tables

    def _weight(self, dtype: torch.dtype) -> torch.Tensor | None:
        return None if self.weight is None else self.weight.to(dtype)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``input`` (logits) and ``target``, shaped as ``nn.CrossEntropyLoss``'s (class docstring)."""
        C, soft = self._check_call(input, target)
        rows = _Rows(input, target, soft)
        if soft or self.label_smoothing:
            T, weight = self.T, self.weight
            loss = _soft_loss(lambda h, s: _reference.forward_corrected_ce_soft(h, s, T, weight), rows, C,
                              self.label_smoothing, self.ignore_index, weight, self.reduction)
            return rows.finish(loss, self.reduction)
        dtype = _table_dtype(rows.logits.dtype)
        if self.learnable:  # one fused op: the loss and its gradients for the logits and T_logits
            theta_t = self.T_logits.t()  # contiguous: T_logits is kept column-major
            loss = learnable_forward_loss(rows.logits, rows.target, theta_t if theta_t.is_contiguous() else
                                          theta_t.contiguous(), self.reduction, self.ignore_index,
                                          weight=self._weight(dtype))
            return rows.finish(loss, self.reduction)
        log_T_t, T_t = self._fixed_tables(rows.logits)
        loss = forward_loss(rows.logits, rows.target, log_T_t, self.reduction, self.ignore_index, T_t=T_t,
                            weight=self._weight(dtype))
        return rows.finish(loss, self.reduction)
