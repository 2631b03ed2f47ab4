"""The competing losses of Table 2 (paper, section 5.2) and two modern noise-robust baselines.

Every loss takes ``logits`` ``h`` (``B x C``, floating) and integer ``target`` ``y`` (``B``, int64 or uint8
in ``[0, C)`` or ``ignore_index``, default -100) and reduces like :func:`torch.nn.functional.cross_entropy`:
``reduction="mean"`` averages over the non-ignored examples, ``"sum"`` adds them, ``"none"`` returns the
``B`` per-example losses (0 where ignored); the result has the logits' dtype. Below ``p = softmax(h)``,
``e^y`` is the one-hot target. Each is a function (``gce(logits, target, "mean", q=0.7)``) and an
``nn.Module`` named like ``nn.CrossEntropyLoss`` (``GCELoss(q=0.7)(logits, target)``, bit for bit the same).

Every loss checks its inputs as every loss of pyrobust does (:mod:`pyrobust._checks`) and so raises what
``F.cross_entropy`` raises: ``TypeError``/:class:`~pyrobust._checks.DtypeError` (also a ``RuntimeError``)
for a wrong dtype, ``ValueError`` for wrong shapes or an unknown ``reduction``, ``IndexError`` for a class
outside ``[0, C)`` that is not ``ignore_index``; and ``ValueError`` for a hyperparameter out of range.

Non-finite logits: a logit of ``-inf`` that is not the target's (a masked class) gives what the formula
gives in the limit (a term ``0 * h_k`` or ``p_k log p_k`` is 0 there, not NaN); a NaN or ``+inf`` logit gives
NaN, as ``F.cross_entropy``.

The losses live in :mod:`pyrobust.losses.margin` (unhinged, sigmoid, Savage: how they are made multi-class),
:mod:`pyrobust.losses.ce_variants` (bootstrapping, GCE, SCE) and, as modules,
:mod:`pyrobust.losses.baseline_modules`; this module is their public face.
"""

from pyrobust.losses.baseline_modules import (BaselineLoss, BootstrapHardLoss, BootstrapSoftLoss, GCELoss, SavageLoss,
                                              SCELoss, SigmoidLoss, UnhingedLoss)
from pyrobust.losses.ce_variants import bootstrap_hard, bootstrap_soft, gce, sce
from pyrobust.losses.margin import savage, sigmoid, unhinged

__all__ = ["bootstrap_hard", "bootstrap_soft", "gce", "savage", "sce", "sigmoid", "unhinged", "BaselineLoss"]
__all__ += ["BootstrapHardLoss", "BootstrapSoftLoss", "GCELoss", "SCELoss", "SavageLoss", "SigmoidLoss"]
__all__ += ["UnhingedLoss"]
