"""Losses: the paper's forward/backward corrections, the conditioning of T they need, and the baselines of
Table 2, each as a function and as an ``nn.Module``.

Which method of Table 2 uses which loss is the business of :mod:`pyrobust.registry`, not of this package.
"""

# --- corrected losses (paper, section 4) ---
from pyrobust.losses.corrected import (
    BackwardCorrectedLoss,
    ForwardCorrectedLoss,
    backward_corrected_cross_entropy,
    forward_corrected_cross_entropy,
)

# --- the forward correction with a T learned while training (T-Revision, VolMinNet) ---
from pyrobust.losses.learned_transition import TRevisionLoss, VolMinNetLoss

# --- conditioning of T for the backward correction (section 4.1) ---
from pyrobust.losses.conditioning import MAX_CONDITION_NUMBER, condition_number, identity_mix_for

# --- baselines (section 5.2, and GCE, SCE) ---
from pyrobust.losses.baselines import (
    BaselineLoss,
    BootstrapHardLoss,
    BootstrapSoftLoss,
    GCELoss,
    SavageLoss,
    SCELoss,
    SigmoidLoss,
    UnhingedLoss,
    bootstrap_hard,
    bootstrap_soft,
    gce,
    savage,
    sce,
    sigmoid,
    unhinged,
)

__all__ = [
    "MAX_CONDITION_NUMBER",
    "BackwardCorrectedLoss",
    "BaselineLoss",
    "BootstrapHardLoss",
    "BootstrapSoftLoss",
    "ForwardCorrectedLoss",
    "GCELoss",
    "SCELoss",
    "SavageLoss",
    "SigmoidLoss",
    "TRevisionLoss",
    "UnhingedLoss",
    "VolMinNetLoss",
    "backward_corrected_cross_entropy",
    "bootstrap_hard",
    "bootstrap_soft",
    "condition_number",
    "forward_corrected_cross_entropy",
    "gce",
    "identity_mix_for",
    "savage",
    "sce",
    "sigmoid",
    "unhinged",
]
