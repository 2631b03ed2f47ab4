"""pyrobust: deep learning robust to label noise by loss correction (Patrini et al., CVPR 2017).

Conventions (as in the paper): ``T[i, j] = p(noisy = j | clean = i)`` is a row-stochastic ``C x C``
matrix; ``T_hat`` is its estimate; logits are ``B x C``; targets are int64 class indices of shape ``B``.

Everything public is re-exported here: a user never needs to import a private module. Names are loaded
on first use (PEP 562), so ``import pyrobust`` and the ``pyrobust`` command's ``--help`` import no torch
until a loss, a model or a data set is asked for. The registries (``register_method``, ...) are torch-free.

The library knows nothing of Table 2: the experiment that rebuilds the paper's tables lives in
:mod:`pyrobust.experiment`, which imports the library and never the reverse.
"""

from __future__ import annotations

import importlib
from typing import Any

from pyrobust.entries import DatasetInfo, Estimator, Method
from pyrobust.registry import (
    get_dataset,
    get_estimator,
    get_method,
    list_datasets,
    list_estimators,
    list_methods,
    register_dataset,
    register_estimator,
    register_method,
)

from pyrobust._version import __version__

#: Public name -> the module that defines it, imported on first access.
_LAZY: dict[str, str] = {
    # corrected losses and their kernels
    "backend": "pyrobust._ops",
    "check_transition_matrix": "pyrobust._checks",
    "BackwardCorrectedLoss": "pyrobust.losses.corrected",
    "ForwardCorrectedLoss": "pyrobust.losses.corrected",
    "backward_corrected_cross_entropy": "pyrobust.losses.corrected",
    "forward_corrected_cross_entropy": "pyrobust.losses.corrected",
    "TRevisionLoss": "pyrobust.losses.learned_transition",
    "VolMinNetLoss": "pyrobust.losses.learned_transition",
    # estimation of T, plots, networks
    "EstimationWarning": "pyrobust.estimate",
    "estimate_transition_matrix": "pyrobust.estimate",
    "estimation_error": "pyrobust.estimate",
    "plot_transition_matrices": "pyrobust.plots",
    "build_model": "pyrobust.models",
}
_SUBMODULES = ("catalog", "data", "estimate", "experiment", "losses", "models", "noise", "plots", "registry")

__all__ = sorted(
    [
        *_LAZY,
        *_SUBMODULES,
        "DatasetInfo",
        "Estimator",
        "Method",
        "get_dataset",
        "get_estimator",
        "get_method",
        "list_datasets",
        "list_estimators",
        "list_methods",
        "register_dataset",
        "register_estimator",
        "register_method",
    ]
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"pyrobust.{name}")
    else:
        raise AttributeError(f"module 'pyrobust' has no attribute {name!r}")
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
