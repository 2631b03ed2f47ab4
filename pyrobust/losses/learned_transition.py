"""Forward corrections that learn T while the network trains: T-Revision and VolMinNet.

Both are :class:`~pyrobust.losses.ForwardCorrectedLoss` with ``learnable=True``: T is the row-softmax of the
parameter ``T_logits``, trained by the optimiser that the experiment gives the loss's parameters
(:func:`pyrobust.experiment.loop.fit`: SGD with momentum 0.9 at ``TrainConfig.transition_lr``), and the fused
kernel computes ``d loss / d T_logits`` with the loss. What differs is where T starts and what else the
loss holds.
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch

from pyrobust.losses.corrected import ForwardCorrectedLoss

__all__ = ["TRevisionLoss", "VolMinNetLoss", "volminnet_initial_T"]


class TRevisionLoss(ForwardCorrectedLoss):
    """T-Revision (Xia et al., "Are Anchor Points Really Indispensable in Label-Noise Learning?", NeurIPS
    2019), forward-corrected variant: T starts at the anchor estimate ``T_hat`` and a slack is learned with
    the network.

    The original adds a slack ``Delta T`` to ``T_hat`` and trains it through importance reweighting, in a
    second stage after training with ``T_hat`` fixed. Here the slack lives in the logits of T (T is
    ``softmax(log T_hat + Delta, dim=1)``, ``Delta`` starting at 0), it is trained through the forward
    correction (the issue's allowed variant, section 4.2 of Patrini et al.), and in one stage from the
    start. An entry of ``T_hat`` that is exactly 0 starts at a logit of ``LOG_ZERO`` and barely moves: the
    revision corrects the entries the anchors saw.

    Args:
        T_hat: ``C x C`` row-stochastic tensor (any float dtype), the starting estimate.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``, as ``nn.CrossEntropyLoss``.
        options: the other keyword arguments of :class:`~pyrobust.losses.ForwardCorrectedLoss`.

    Raises:
        ValueError: ``T_hat`` is not a row-stochastic ``C x C`` matrix (from the parent).

    Warns:
        UserWarning: ``T_hat`` has entries exactly 0 (they cannot be revised).
    """

    def __init__(self, T_hat: torch.Tensor, reduction: str = "mean", **options) -> None:
        super().__init__(T_hat, reduction=reduction, learnable=True, **options)
        zeros = int((torch.as_tensor(T_hat) == 0).sum())
        if zeros:
            warnings.warn(
                f"TRevisionLoss: T_hat has {zeros} entries exactly 0; their logits start at LOG_ZERO and the "
                "revision cannot move them (an identity T_hat is not revised at all)",
                UserWarning, stacklevel=2,
            )


def volminnet_initial_T(num_classes: int, off_diagonal: float = -2.0) -> torch.Tensor:
    """VolMinNet's starting T: ``I + sigmoid(off_diagonal)`` off the diagonal, each row divided by its sum.

    With the authors' ``off_diagonal = -2`` and ``C = 10`` the diagonal is 0.48 and every other entry 0.058:
    a T close to the identity, inside the simplex the noisy posteriors fill, from which the minimum-volume
    penalty shrinks it onto them. Float64 ``C x C``.

    Raises:
        TypeError: ``num_classes`` is not an integer.
        ValueError: ``num_classes < 2``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"num_classes must be an integer, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    off = torch.sigmoid(torch.tensor(off_diagonal, dtype=torch.float64))
    T = torch.full((num_classes, num_classes), float(off), dtype=torch.float64)
    T.fill_diagonal_(1.0)
    return T / T.sum(dim=1, keepdim=True)


class VolMinNetLoss(ForwardCorrectedLoss):
    """VolMinNet (Li, Liu, Han, Niu & Sugiyama, "Provably End-to-end Label-noise Learning without Anchor
    Points", ICML 2021): T learned with the network from a near-identity start, no anchor points, with the
    minimum-volume penalty ``volume_weight * log|det T|`` added to the forward-corrected loss.

    Among the T whose simplex contains every noisy posterior, the smallest one is the true T (sufficiently
    scattered clean posteriors); the penalty pulls the learned simplex onto that one. T is parametrised by
    a row-softmax (the authors: sigmoid entries off a fixed unit diagonal, rows normalised); the start is
    :func:`volminnet_initial_T`.

    The penalty is added once per call: to the mean (``"mean"``) or the sum (``"sum"``), and spread evenly
    over the elements of ``"none"`` (so that their sum is the ``"sum"`` loss).

    Args:
        num_classes: ``C``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        volume_weight: the penalty's weight (the authors' default 1e-4); 0 leaves a plain learnable forward
            correction.
        off_diagonal: the start's pre-sigmoid off-diagonal value (:func:`volminnet_initial_T`).
        options: the other keyword arguments of :class:`~pyrobust.losses.ForwardCorrectedLoss`.

    The penalty is not masked: with ``ignore_index`` and ``"none"``, an ignored element carries its share
    of it too (its cross-entropy part is 0).

    Raises:
        TypeError: ``num_classes`` is not an integer.
        ValueError: ``num_classes < 2``, or ``volume_weight`` negative or not finite.
    """

    def __init__(
        self, num_classes: int, reduction: str = "mean", *, volume_weight: float = 1e-4,
        off_diagonal: float = -2.0, **options,
    ) -> None:
        if not math.isfinite(volume_weight) or volume_weight < 0:
            raise ValueError(f"volume_weight must be a finite number >= 0, got {volume_weight}")
        super().__init__(volminnet_initial_T(num_classes, off_diagonal), reduction=reduction, learnable=True,
                         **options)
        self.volume_weight = float(volume_weight)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = super().forward(input, target)
        if self.volume_weight == 0:
            return loss
        penalty = self.volume_weight * torch.linalg.slogdet(self.T.to(torch.float32)).logabsdet
        if self.reduction == "none":
            return loss + (penalty / max(loss.numel(), 1)).to(loss.dtype)
        return loss + penalty.to(loss.dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, volume_weight={self.volume_weight:g}"
