"""pyrobust: deep learning robust to label noise by loss correction (Patrini et al., CVPR 2017).

Conventions (as in the paper): ``T[i, j] = p(noisy = j | clean = i)`` is a row-stochastic ``C x C``
matrix; ``T_hat`` is its estimate; logits are ``B x C``; targets are int64 class indices of shape ``B``.

Everything public is re-exported here: a user never needs to import a private module.
"""

from pyrobust._checks import check_transition_matrix

__version__ = "0.1.0"

# --- corrected losses and kernels (pyrobust.losses.corrected, pyrobust._ops) ---
from pyrobust._ops import backend
from pyrobust.losses.corrected import (
    BackwardCorrectedLoss,
    ForwardCorrectedLoss,
    backward_corrected_cross_entropy,
    forward_corrected_cross_entropy,
)

# --- noise models, estimation of T, baseline losses ---
from pyrobust import losses, noise
from pyrobust.estimate import estimate_transition_matrix, estimation_error
from pyrobust.losses import METHODS, get_method
from pyrobust.plots import plot_transition_matrices

# --- data, models, training, reports ---
# `pyrobust.train` stays the module (one cell: pyrobust.train.train); its entry points are re-exported by name.
from pyrobust import data, models
from pyrobust.models import build_model
from pyrobust.train import NoisyLabels, TrainConfig, corrupt_labels, train_methods

__all__ = [name for name in dir() if not name.startswith("_")]
