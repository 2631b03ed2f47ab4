"""Loss-corrected cross-entropies of Patrini et al. (CVPR 2017), section 4, on fused kernels.

Notation: logits ``h`` of shape (B, C), targets ``y`` (B,) holding *noisy* labels, the transition matrix
``T[i, j] = p(noisy = j | clean = i)`` (C x C, row-stochastic), ``p = softmax(h)``.

* Forward correction (eq. 5): ``loss_i = -log sum_j T[j, y_i] p_ij``, computed in log space as
  ``logsumexp(h_i) - logsumexp(h_i + log T[:, y_i])``: exact where T has zeros, no clipping.
* Backward correction (Theorem 1): ``loss_i = sum_j T^{-1}[y_i, j] (-log p_ij)``, unbiased: its
  expectation over noisy labels drawn from T equals the clean cross-entropy.

Both are drop-ins for ``F.cross_entropy`` / ``nn.CrossEntropyLoss`` (with ``T = I`` they *are* it, to
round-off): the same shapes (unbatched ``(C,)``, ``(N, C)``, ``(N, C, d1, ..., dK)``), targets (class
indices, int64 or uint8, or class probabilities of the logits' shape), ``weight``, ``ignore_index``,
``reduction``, ``label_smoothing``, and the loss in the logits' dtype (float32 under autocast).

Cost. With class indices each row costs O(C): it reads column ``y_i`` of T (forward) or row ``y_i`` of
T^{-1} (backward), and one pass over its logits yields both the loss and ``d loss_i / d h_i`` (and, for a
learnable T, ``d loss / d T``); weights, label smoothing of the backward correction and K-dimensional
inputs keep that fused path. The maths allows no O(C) form for the forward correction of class
probabilities, nor of label smoothing (which makes class probabilities of the targets): they need all of
``T^T p``, O(C^2) per row (a (B, C) x (C, C) product), computed exactly in log space by plain PyTorch. The
backward correction of class probabilities costs one such product too (``s T^{-1}``), then O(C) per row.

Class weights ``w`` (derivation). ``F.cross_entropy`` weighs each term of the cross-entropy by the weight
of the class it scores, and a mean divides by the summed weights of the targets:
``sum_i w[y_i] CE_i / sum_i w[y_i]``.

* The forward correction is the cross-entropy of the model of the *noisy* label, ``q = T^T p``, against the
  observed label: its term is that of class ``y_i``, so ``loss_i = -w[y_i] log q_{y_i}``.
* The backward correction combines the per-class losses ``l_j = -log p_j`` with ``T^{-1}[y_i, j]``; weighing
  each by its class, ``w_j l_j``, before the correction gives ``loss_i = sum_j T^{-1}[y_i, j] w_j l_j``,
  whose expectation over ``y_i ~ T[y, :]`` is ``w_y l_y``: the weighted cross-entropy of the clean class
  (Theorem 1 applied to the weighted losses). The weight is that of the *clean* class of each term.
* Both means divide by ``sum_i w[y_i]`` over the rows not ignored, the observed labels' weights, as
  ``F.cross_entropy`` does (always positive; ``(T^{-1} w)_{y_i}``, unbiased for the clean labels' weights,
  can be negative). With ``T = I`` both are ``F.cross_entropy(weight=w)``.

Label smoothing ``eps`` replaces the target ``e_y`` with ``(1 - eps) e_y + eps / C`` (as ``F.cross_entropy``);
a class-probability target ``s`` enters the forward correction as ``-sum_k w_k s_k log q_k`` and the
backward one as ``sum_k s_k (T^{-1} (w l))_k``; for smoothing the latter is ``T^{-1}[y]`` scaled by
``1 - eps`` plus ``eps`` times the mean row of ``T^{-1}`` (O(C) per row, fused).

Non-finite logits: a logit of ``-inf`` that is not the target's (a masked class) gives what the formula
gives in the limit (finite, unless the target itself or, for the backward correction, a class with a
non-zero coefficient is masked); a NaN or ``+inf`` logit gives NaN, as ``F.cross_entropy``.

``pyrobust.backend(device)`` says which implementation runs; see ``pyrobust._ops``. Inputs are checked by
``pyrobust._checks`` (the exception types of ``F.cross_entropy``); the backward correction refuses an
ill-conditioned T by the policy of :mod:`pyrobust.losses.conditioning` (paper, section 4.1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pyrobust import _reference
from pyrobust._checks import (
    STOCHASTIC_ATOL,
    check_input_and_target,
    check_inverse,
    check_label_smoothing,
    check_reduction,
    check_transition_matrix,
    check_weight,
)
from pyrobust._ops import (
    _table_dtype,
    backward_loss,
    forward_loss,
    learnable_forward_loss,
)
from pyrobust.losses.conditioning import (
    MAX_CONDITION_NUMBER,
    condition_number,
    identity_mix_for,
)

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


def _check_T_call(T: torch.Tensor, num_classes: int, logits: torch.Tensor) -> torch.Tensor:
    """T of a function call: fully checked in eager mode (:func:`check_transition_matrix`); under
    ``torch.compile`` its shape is checked while tracing and its values by one device-side assertion, so
    that the check costs no graph break (a ``RuntimeError`` naming the rule instead of the ``ValueError``)."""
    if not torch.compiler.is_compiling():
        T = check_transition_matrix(T, num_classes)
        _check_same_device("T", T, logits)
        return T
    if T.dim() != 2 or T.shape[0] != T.shape[1] or T.shape[0] != num_classes or not T.is_floating_point():
        raise ValueError(f"T must be a floating-point {num_classes} x {num_classes} matrix, got {tuple(T.shape)}")
    _check_same_device("T", T, logits)
    Td = T.detach().to(torch.float64)
    ok = torch.isfinite(Td).all() & (Td >= -STOCHASTIC_ATOL).all() & ((Td.sum(1) - 1).abs() <= STOCHASTIC_ATOL).all()
    torch._assert_async(ok, "T is not a valid transition matrix: finite, entries >= 0, rows summing to 1")
    return T


# --- derived tables -------------------------------------------------------------------------------


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


# --- shapes ---------------------------------------------------------------------------------------


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


def _check_soft(soft: bool, ignore_index: int) -> None:
    if soft and ignore_index != -100:
        raise ValueError("ignore_index is not supported for class-probability targets (F.cross_entropy neither)")


# --- the functions --------------------------------------------------------------------------------


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
    ``F.cross_entropy`` (module docstring): with ``T = I`` it is that. Class probabilities ``s`` (and label
    smoothing, which makes them): ``loss_i = -sum_k w_k s_ik log (T^T softmax(h_i))_k``, O(C^2) per row
    (class indices: O(C), fused).

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
            weight of its observed label (module docstring).
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
    not the fused kernel. A drop-in for ``F.cross_entropy`` (module docstring): with ``T = I`` it is that.
    Label smoothing ``eps`` uses ``(1 - eps) T^{-1}[y] + eps mean_k T^{-1}[k]`` (fused, O(C) per row);
    class probabilities ``s``: ``sum_j (s_i T^{-1})_j w_j l_j`` (one (N, C) x (C, C) product).

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


# --- modules ------------------------------------------------------------------------------------------

#: Where a learnable T starts at a zero of T: a logit whose exp is 0 in float32 and float64 (so softmax gives
#: T exactly), yet finite, so that weight decay or an optimiser's arithmetic never meets inf - inf.
LOG_ZERO = -1000.0


class _CorrectedLoss(nn.Module):
    """Shared by the two modules: T held as a buffer (``state_dict()["T"]``), checked once; what is derived
    from it (``log T^T``, ``T^{-1}``) held as non-persistent buffers, re-derived when T is replaced, and cast
    per device and dtype of the logits in a cache that ``.to()`` and ``load_state_dict()`` clear."""

    _kind: str
    #: probability clip of the backward correction (``BackwardCorrectedLoss(clip=...)``); the forward
    #: correction is always exact
    clip: float = 0.0
    learnable: bool = False

    def __init__(
        self,
        T: torch.Tensor,
        reduction: str = "mean",
        ignore_index: int = -100,
        *,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        T = check_transition_matrix(T).detach().to(torch.float64).clone()
        self.reduction = reduction
        self.ignore_index = int(ignore_index)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.num_classes = T.shape[0]
        if weight is not None:
            weight = check_weight(weight, self.num_classes, weight.device).detach().clone()
        self.register_buffer("weight", weight)  # as nn.CrossEntropyLoss: in the state_dict when given
        self._tables: dict[tuple[torch.device, torch.dtype], tuple] = {}
        self._init_T(T)

    # -- T and what derives from it

    def _init_T(self, T: torch.Tensor) -> None:
        self._buffers["T"] = T  # `T` is also a property (below): registered past register_buffer's name check
        self._derive()

    @property
    def T(self) -> torch.Tensor:
        """The transition matrix ``T[i, j] = p(noisy = j | clean = i)`` (C x C; float64 unless the module was
        cast). A learnable T is ``softmax(T_logits, dim=1)``, differentiable (e.g. for a regulariser)."""
        if self.learnable:
            return torch.softmax(self.T_logits, dim=1)
        return self._buffers["T"]

    def __setattr__(self, name: str, value) -> None:
        if name == "T":  # `loss.T = T_new`: checked and derived as at construction
            self.set_transition_matrix(value)
        else:
            super().__setattr__(name, value)

    def set_transition_matrix(self, T: torch.Tensor) -> None:
        """Replace T (C x C, row-stochastic; checked) and re-derive what depends on it; a learnable T restarts
        from it. What ``load_state_dict`` does with a checkpoint's ``T``.

        Raises:
            TypeError, ValueError: T is not a valid C x C transition matrix (:func:`check_transition_matrix`);
                for the backward correction, also an ill-conditioned T.
        """
        T = check_transition_matrix(torch.as_tensor(T), self.num_classes).detach()
        self._check_new_T(T)
        with torch.no_grad():
            if self.learnable:
                self.T_logits.copy_(_free_logits(T.to(self.T_logits.device), self.T_logits.dtype))
            else:
                self._buffers["T"].copy_(T)
        self._derive()

    def _derive(self) -> None:
        """Re-derive the non-persistent buffers from T and clear the cast tables."""
        self._tables.clear()

    def _check_new_T(self, T: torch.Tensor) -> None:
        """Raise what deriving from ``T`` would raise, before it replaces the current T."""

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._tables.clear()  # the derived buffers moved or were cast: cast them again on the next call
        return out

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        key = prefix + "T"
        if key in state_dict and not self.learnable:
            # Check before the buffer is overwritten: an invalid T never reaches the module.
            self._check_new_T(check_transition_matrix(state_dict[key], self.num_classes))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if prefix + "T_logits" in unexpected_keys:  # a learnable T's checkpoint: its "T" is the matrix
            unexpected_keys.remove(prefix + "T_logits")
        if not self.learnable and key in state_dict:
            self._derive()

    def extra_repr(self) -> str:
        parts = [f"num_classes={self.num_classes}", f"reduction={self.reduction!r}", f"ignore_index={self.ignore_index}"]
        if self.weight is not None:
            parts.append(f"weight=({self.weight.shape[0]},)")
        parts.append(f"label_smoothing={self.label_smoothing}")
        parts += [f"{name}={value}" for name, value in self._options()]
        return ", ".join(parts)

    def _options(self) -> list[tuple[str, object]]:
        return []

    # -- the loss

    def _check_call(self, input: torch.Tensor, target: torch.Tensor) -> tuple[int, bool]:
        C, soft = check_input_and_target(input, target, self.reduction)
        if C != self.num_classes:
            raise ValueError(f"T is {self.num_classes} x {self.num_classes} but the logits have {C} classes")
        _check_soft(soft, self.ignore_index)
        if self.weight is not None:
            _check_same_device("weight", self.weight, input)
        return C, soft


def _free_logits(T: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The free logits of a learnable T, ``log T`` (``LOG_ZERO`` at its zeros), in ``dtype``, stored
    column-major: their transpose, what the kernels read, is contiguous."""
    logits = T.to(torch.float64).log().clamp_min(LOG_ZERO).to(dtype)
    return logits.t().contiguous().t()


class ForwardCorrectedLoss(_CorrectedLoss):
    """``nn.Module`` form of :func:`forward_corrected_cross_entropy`, a drop-in for ``nn.CrossEntropyLoss``.

    ``loss(input, target)`` with the shapes of ``nn.CrossEntropyLoss`` (module docstring). T (C x C) is
    validated once and held as the buffer ``T`` (``state_dict()["T"]``); ``log T^T`` is derived from it (a
    non-persistent buffer) and cast per device and dtype of the logits, with ``exp`` of the cast table, the
    cache that makes the CPU kernel's forward correction one exp per logit. ``load_state_dict`` with another
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
