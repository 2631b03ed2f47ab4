"""Losses: the paper's forward/backward corrections, the baselines of Table 2, and the method registry."""

# --- corrected losses (KERNELS) ---
from pyrobust.losses.corrected import (
    MAX_CONDITION_NUMBER,
    BackwardCorrectedLoss,
    ForwardCorrectedLoss,
    backward_corrected_cross_entropy,
    forward_corrected_cross_entropy,
)

# --- baselines and registry (STATS) ---
from pyrobust.losses.baselines import bootstrap_hard, bootstrap_soft, gce, savage, sce, sigmoid, unhinged
from pyrobust.losses.registry import METHODS, BaselineLoss, Method, get_method
