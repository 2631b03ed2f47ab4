"""The confident-joint estimator of ``T`` (Confident Learning), which also reads the noisy labels.

Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 70, 2021,
section 3.1: the confident joint, its calibration, and the noise matrix read off the calibrated joint,
transposed to pyrobust's ``T[clean, noisy]``. Two rules for an example confident in several classes:

- ``"paper"`` (:func:`confident_joint`, the default): eq. 1, the argmax over the classes that pass their
  threshold only;
- ``"cleanlab"`` (:func:`confident_joint_cleanlab`): the argmax over all classes, as
  ``cleanlab.count.compute_confident_joint`` does (an open upstream report): with probabilities
  ``(0.1, 0.2, 0.3, 0.4)`` and thresholds ``(0.02, 0.9, 0.034, 0.9)`` classes 0 and 2 pass and the paper
  counts class 2, cleanlab class 3, which did not pass.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from pyrobust._checks import check_transition_matrix
from pyrobust.estimate.failures import EstimationWarning

__all__ = ["confident_joint", "confident_joint_cleanlab", "confident_joint_counts"]


def confident_joint(probs: torch.Tensor, *, labels: torch.Tensor, **options: Any) -> torch.Tensor:
    """``T_hat`` from the calibrated confident joint with the paper's rule (eq. 1); see :func:`_estimate`."""
    return _estimate(probs, labels, "paper")


def confident_joint_cleanlab(probs: torch.Tensor, *, labels: torch.Tensor, **options: Any) -> torch.Tensor:
    """``T_hat`` from the calibrated confident joint with cleanlab's rule; see :func:`_estimate`."""
    return _estimate(probs, labels, "cleanlab")


def _estimate(probs: torch.Tensor, labels: torch.Tensor, rule: str) -> torch.Tensor:
    """``T_hat`` from the calibrated confident joint (Northcutt et al., JAIR 2021, section 3.1).

    With per-class thresholds ``t_j = mean{probs[x, j] : labels[x] = j}``, each example with at least one
    ``probs[x, k] >= t_k`` is counted in the confident joint ``J[k*, labels[x]]``, where ``k*`` is its
    only such class or, if several, the argmax over those classes (``rule="paper"``) or over all classes
    (``rule="cleanlab"``); the diagonal is raised to at least 1, each column
    ``j`` is scaled to the number of examples labelled ``j`` (calibration), and
    ``T_hat[i, j] = J[i, j] / sum_j J[i, j]`` (:func:`confident_joint_counts`). The result is
    always row-normalised (``row_normalize`` is ignored, and so are ``quantile`` and
    ``filter_outliers``). With ``rule="cleanlab"`` it equals cleanlab's ``noise_matrix.T`` up to that rounding.

    Args:
        probs: ``n x C`` floating tensor (CPU or CUDA) of softmax outputs ``p(noisy | x)``, validated by
            :func:`pyrobust.estimate_transition_matrix`.
        labels: the ``n`` noisy labels, an int64 tensor on ``probs``' device with values in ``[0, C)``.
        rule: ``"paper"`` or ``"cleanlab"``.

    Returns:
        ``T_hat``, a float64 ``C x C`` row-stochastic tensor on ``probs``' device.

    Raises:
        ValueError: a class has no example among the noisy labels.

    Warns:
        EstimationWarning: at most one example is confidently counted as class ``i``, and none with
            another label (its row is then the identity's), named.
    """
    counts = confident_joint_counts(probs, labels, calibrate=False, rule=rule)
    for i in torch.nonzero(counts.sum(dim=1) <= 1).flatten().tolist():
        if counts[i].sum() == counts[i, i]:
            warnings.warn(
                f"confident_joint: at most one example is confidently of class {i}: its row of T_hat is the "
                "identity's",
                EstimationWarning, stacklevel=3,
            )
    T_hat = confident_joint_counts(probs, labels, rule=rule)
    T_hat = T_hat / T_hat.sum(dim=1, keepdim=True)
    return check_transition_matrix(T_hat, name="T_hat")


def confident_joint_counts(
    probs: torch.Tensor, labels: torch.Tensor, *, calibrate: bool = True, rule: str = "paper"
) -> torch.Tensor:
    """The confident joint ``J[true, noisy]`` in counts (Northcutt et al., JAIR 2021, section 3.1).

    ``J[i, j]`` counts the examples labelled ``j`` whose probabilities say, confidently, class ``i``
    (several confident classes: the argmax over them, ``rule="paper"``, or over all classes,
    ``rule="cleanlab"``). With ``rule="cleanlab"`` it mirrors
    ``cleanlab.count.compute_confident_joint(labels, pred_probs, calibrate=...)`` transposed, without the
    final rounding of the calibrated joint to integers.

    Args:
        probs: ``n x C`` floating tensor of softmax outputs ``p(noisy | x)``.
        labels: the ``n`` noisy labels, an int64 tensor on ``probs``' device with values in ``[0, C)``.
        calibrate: scale column ``j`` to the number of examples labelled ``j`` (calibration), so ``J`` sums to
            ``n``; False returns the raw counts (diagonal raised to at least 1).
        rule: ``"paper"`` (Northcutt et al., eq. 1) or ``"cleanlab"``.

    Returns:
        ``J``, a float64 ``C x C`` tensor on ``probs``' device, rows indexed by the true class.

    Raises:
        ValueError: a class has no example among the noisy labels, or ``rule`` is neither ``"paper"``
            nor ``"cleanlab"``.
    """
    if rule not in ("paper", "cleanlab"):
        raise ValueError(f"rule must be 'paper' or 'cleanlab', got {rule!r}")
    P = probs
    n, C = P.shape
    noisy_counts = torch.bincount(labels, minlength=C)
    if (noisy_counts == 0).any():
        missing = torch.nonzero(noisy_counts == 0).flatten().tolist()
        raise ValueError(
            f"confident_joint needs every class among the noisy labels; classes {missing} have none"
        )
    self_confidence = P.gather(1, labels[:, None]).squeeze(1).to(torch.float64)
    thresholds = torch.zeros(C, dtype=torch.float64, device=P.device).index_add_(0, labels, self_confidence)
    # cleanlab's constants: thresholds clipped below at 2e-6, compared with a 1e-6 slack.
    thresholds = (thresholds / noisy_counts).clamp(min=2e-6)
    confident = P.to(torch.float64) >= thresholds - 1e-6
    num_confident = confident.sum(dim=1)
    if rule == "paper":  # eq. 1: the argmax over the confident classes only
        true_guess = P.masked_fill(~confident, -1.0).argmax(dim=1)
    else:  # cleanlab: over all classes when several are confident
        true_guess = torch.where(num_confident > 1, P.argmax(dim=1), confident.to(torch.uint8).argmax(dim=1))
    keep = num_confident > 0
    joint = torch.bincount(true_guess[keep] * C + labels[keep], minlength=C * C)
    joint = joint.reshape(C, C).to(torch.float64)
    joint.diagonal().clamp_(min=1.0)  # at least one confidently correct example per class
    if not calibrate:
        return joint
    # Calibration: column j (noisy label j) sums to the number of examples labelled j, so the total is n.
    return joint / joint.sum(dim=0, keepdim=True) * noisy_counts.to(torch.float64)
