"""Loss-corrected cross-entropies of Patrini et al. (CVPR 2017), section 4, on fused kernels.

Notation: logits ``h`` of shape (B, C), targets ``y`` (B,) int64 holding *noisy* labels, the transition
matrix ``T[i, j] = p(noisy = j | clean = i)`` (C x C, row-stochastic), ``p = softmax(h)``.

* Forward correction (eq. 5): ``loss_i = -log sum_j T[j, y_i] p_ij``, computed in log space as
  ``logsumexp(h_i) - logsumexp(h_i + log T[:, y_i])``: exact where T has zeros, no clipping.
* Backward correction (Theorem 1): ``loss_i = sum_j T^{-1}[y_i, j] (-log p_ij)``, unbiased: its
  expectation over noisy labels drawn from T equals the clean cross-entropy.

Each row costs O(C): it reads column ``y_i`` of T (forward) or row ``y_i`` of T^{-1} (backward) and
one pass over its logits yields both the loss and ``d loss_i / d h_i``. ``pyrobust.backend(device)``
says which implementation runs; see ``pyrobust._ops``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pyrobust import _reference
from pyrobust._checks import check_transition_matrix
from pyrobust._ops import REDUCTIONS, _table_dtype, available, backend

__all__ = [
    "forward_corrected_cross_entropy",
    "backward_corrected_cross_entropy",
    "ForwardCorrectedLoss",
    "BackwardCorrectedLoss",
    "MAX_CONDITION_NUMBER",
]

#: Largest 1-norm condition number of T accepted by the backward correction. Its loss multiplies the
#: per-class losses by T^{-1}, whose entries grow with the condition number; beyond this the loss and
#: its gradients are dominated by amplified noise.
MAX_CONDITION_NUMBER = 1e4

_REDUCTIONS = tuple(REDUCTIONS)


# --- validation -------------------------------------------------------------------------------------


def _check_inputs(logits: torch.Tensor, target: torch.Tensor, reduction: str) -> int:
    """Check logits (B, C) and target (B,); return C."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError("logits and target must be tensors")
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D (B, C), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    if target.dtype != torch.int64:
        raise TypeError(f"target must hold int64 class indices, got {target.dtype}")
    if target.dim() != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"target must have shape ({logits.shape[0]},) to match logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)}"
        )
    if target.device != logits.device:
        raise ValueError(f"logits are on {logits.device} but target is on {target.device}")
    if logits.shape[1] == 0:
        raise ValueError("logits have 0 classes")
    return logits.shape[1]


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
    """``((1 - identity_mix) T + identity_mix I)^{-1}`` in float64, refusing singular or ill-conditioned T."""
    T = T.to(torch.float64)
    if identity_mix:
        T = (1 - identity_mix) * T + identity_mix * torch.eye(T.shape[0], dtype=T.dtype, device=T.device)
    T_inv, info = torch.linalg.inv_ex(T.detach())
    cond = math.inf
    if int(info) == 0:
        cond = float(torch.linalg.matrix_norm(T.detach(), 1) * torch.linalg.matrix_norm(T_inv, 1))
    if not cond <= MAX_CONDITION_NUMBER:
        what = "singular" if math.isinf(cond) else "ill-conditioned"
        raise ValueError(
            f"T is {what} (1-norm condition number {cond:.3g} > {MAX_CONDITION_NUMBER:g}): the backward "
            "correction multiplies the loss by T^-1 and would amplify noise. Mix T with the identity, "
            "the remedy of Patrini et al. (sec. 4.1): pass identity_mix=0.1 (uses 0.9 T + 0.1 I), or use "
            "the forward correction, which needs no inverse"
        )
    # Autograd to T (for learning T) goes through a differentiable inverse; the check above is detached.
    return torch.linalg.inv(T) if T.requires_grad else T_inv


def _check_T_inv(T_inv: torch.Tensor, num_classes: int) -> torch.Tensor:
    if not isinstance(T_inv, torch.Tensor):
        T_inv = torch.as_tensor(T_inv, dtype=torch.float64)
    if T_inv.dim() != 2 or T_inv.shape != (num_classes, num_classes):
        raise ValueError(
            f"T_inv must be {num_classes} x {num_classes} for logits with {num_classes} classes, "
            f"got shape {tuple(T_inv.shape)}"
        )
    if not T_inv.is_floating_point():
        raise TypeError(f"T_inv must be floating point, got {T_inv.dtype}")
    if not bool(torch.isfinite(T_inv).all()):
        raise ValueError("T_inv has non-finite entries")
    return T_inv


# --- the loss on whichever backend runs -------------------------------------------------------------


# The overloads themselves, not the packets: one lookup less per call. They exist where the extension loaded.
_OPS = (
    {kind: getattr(torch.ops.pyrobust, f"{kind}_corrected_ce").default for kind in ("forward", "backward")}
    if available()
    else {}
)


def _corrected_loss(
    kind: str,
    logits: torch.Tensor,
    target: torch.Tensor,
    table: torch.Tensor,
    reduction: str,
    ignore_index: int,
    clip: float = 0.0,
) -> torch.Tensor:
    """The loss reduced as ``F.cross_entropy`` reduces it: by the compiled op itself, or by the reference."""
    impl = backend(logits.device)
    if impl == "cpp" and logits.dtype not in (torch.float32, torch.float64):
        logits = logits.float()  # the CPU kernels run float16/bfloat16 in float32; autograd casts back
    table = table.to(dtype=_table_dtype(logits.dtype))
    # Gradients to the table, and the clipped backward loss (not fused), are plain PyTorch by design.
    if impl != "reference" and not table.requires_grad and not clip:
        args = (logits.contiguous(), target.contiguous(), table.contiguous(), ignore_index, REDUCTIONS[reduction])
        return _OPS[kind](*args)
    _reference.check_targets(target, logits.shape[1], ignore_index)
    if kind == "forward":
        loss = _reference.forward_corrected_ce(logits, target, table, ignore_index)
    else:
        loss = _reference.backward_corrected_ce(logits, target, table, ignore_index, clip)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    # Mean over the rows that are not ignored, as F.cross_entropy: with none left the loss is nan (0 / 0) and
    # its gradient 0.
    count = (target != ignore_index).sum().to(loss.dtype)
    return torch.where(count > 0, loss.sum() / count.clamp_min(1), torch.nan)


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
        The reduced loss (scalar), or (B,) for ``"none"``; float64 for float64 logits, else float32.
    """
    num_classes = _check_inputs(logits, target, reduction)
    T = check_transition_matrix(T, num_classes)
    _check_same_device("T", T, logits)
    return _corrected_loss("forward", logits, target, _log_T_t(T, _table_dtype(logits.dtype)), reduction, ignore_index)


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
        T: (C, C) row-stochastic transition matrix; its 1-norm condition number must not exceed
            ``MAX_CONDITION_NUMBER``.
        T_inv: (C, C) inverse to use instead of T (pass one of the two); not checked for conditioning.
        reduction: ``"mean"`` (over non-ignored rows), ``"sum"`` or ``"none"``.
        ignore_index: target value whose rows contribute 0 loss and 0 gradient.
        identity_mix: ``lam`` in [0, 1]; invert ``(1 - lam) T + lam I`` instead of T.
        clip: ``eps`` in [0, 0.5); 0 (default) is the exact, unclipped loss.

    Returns:
        The reduced loss (scalar), or (B,) for ``"none"``; float64 for float64 logits, else float32.
    """
    num_classes = _check_inputs(logits, target, reduction)
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
        T_inv = _check_T_inv(T_inv, num_classes)
        _check_same_device("T_inv", T_inv, logits)
    return _corrected_loss("backward", logits, target, T_inv, reduction, ignore_index, clip)


# --- modules ------------------------------------------------------------------------------------------


class _CorrectedLoss(nn.Module):
    """Shared by the two modules: T checked once, its derived table cached per (device, dtype)."""

    _kind: str
    #: probability clip of the backward correction (``BackwardCorrectedLoss(clip=...)``); the forward
    #: correction is always exact
    clip: float = 0.0

    def __init__(self, T: torch.Tensor, reduction: str = "mean", ignore_index: int = -100) -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        # A fixed hyper-parameter, kept out of the state_dict so no load can change it under the cache.
        self._T = check_transition_matrix(T).detach().to(torch.float64).clone()
        self.reduction = reduction
        self.ignore_index = int(ignore_index)
        self._tables: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def T(self) -> torch.Tensor:
        """The transition matrix (C x C, float64, a copy)."""
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
        num_classes = _check_inputs(logits, target, self.reduction)
        if num_classes != self._T.shape[0]:
            raise ValueError(f"T is {self._T.shape[0]} x {self._T.shape[0]} but the logits have {num_classes} classes")
        return _corrected_loss(
            self._kind, logits, target, self._table(logits), self.reduction, self.ignore_index, self.clip
        )

    def extra_repr(self) -> str:
        return f"num_classes={self._T.shape[0]}, reduction={self.reduction!r}, ignore_index={self.ignore_index}"


class ForwardCorrectedLoss(_CorrectedLoss):
    """``nn.Module`` form of :func:`forward_corrected_cross_entropy`, in the manner of ``nn.CrossEntropyLoss``.

    ``loss(logits (B, C), target (B,))``; T (C x C) is validated once and ``log T^T`` cached per device and
    dtype of the logits.
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

