"""How an estimator of ``T`` says that its estimate is unreliable: :class:`EstimationWarning`, naming the class.

The failure modes shared by the anchor-point estimators (the paper's, Dual-T's first factor): a class that
the network never predicts, or predicts for fewer examples than the ``1 - quantile`` tail the percentile
anchor is read from, has no anchor, and its row of ``T_hat`` is another class's.
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["EstimationWarning", "warn_unanchored_classes"]


class EstimationWarning(UserWarning):
    """An estimate of ``T`` that is likely wrong in a known way; the message names the class(es)."""


def warn_unanchored_classes(probs: torch.Tensor, quantile: float, estimator: str, stacklevel: int = 3) -> None:
    """Warn for each class ``i`` that no example anchors.

    ``i`` has no anchor when no example is predicted as ``i`` (``argmax_j probs[x, j] == i``), or, for a
    percentile anchor (``quantile < 1``), when fewer than ``(1 - quantile) n`` examples are: the anchor,
    read at rank ``quantile`` of column ``i``, then lies among examples of other classes (Patrini et al.,
    2017, section 5.1: why CIFAR-100 takes the argmax).

    Args:
        probs: ``n x C`` float tensor of ``p(noisy | x)``.
        quantile: the percentile of the anchors, 1 for the argmax.
        estimator: its name, for the message.
    """
    n, C = probs.shape
    predicted = torch.bincount(probs.argmax(dim=1), minlength=C).tolist()
    tail = (1.0 - quantile) * n
    for i, count in enumerate(predicted):
        if count == 0:
            warnings.warn(
                f"{estimator}: class {i} is never the predicted class, so no example anchors it: its row "
                "of T_hat is read off examples of other classes",
                EstimationWarning, stacklevel=stacklevel,
            )
        elif quantile < 1.0 and count < tail:
            warnings.warn(
                f"{estimator}: class {i} is predicted for {count} of {n} examples, fewer than the "
                f"1 - quantile = {1 - quantile:.3g} tail ({tail:.0f}) its anchor is read from: the anchor is "
                "not an example of class "
                f"{i} (take quantile closer to 1, or the argmax, when classes are this rare)",
                EstimationWarning, stacklevel=stacklevel,
            )
