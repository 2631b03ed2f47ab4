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

This module is their public face; the code lies in :mod:`pyrobust.losses.forward` and
:mod:`pyrobust.losses.backward` (each correction's function and module), on the shared parts
``_rows`` (shapes), ``_tables`` (tables derived from T), ``_correction_checks`` and ``_corrected_module``.
"""

from pyrobust.losses._tables import LOG_ZERO  # noqa: F401  (re-exported: tests import it from here)
from pyrobust.losses.backward import BackwardCorrectedLoss, backward_corrected_cross_entropy
from pyrobust.losses.forward import ForwardCorrectedLoss, forward_corrected_cross_entropy

__all__ = [
    "forward_corrected_cross_entropy",
    "backward_corrected_cross_entropy",
    "ForwardCorrectedLoss",
    "BackwardCorrectedLoss",
]
