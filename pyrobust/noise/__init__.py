"""Label-noise models of the paper (Patrini et al., CVPR 2017, section 5.1) and sampling of noisy labels.

Convention: ``T[i, j] = p(noisy = j | clean = i)``, a row-stochastic ``C x C`` matrix, returned by every
function here as a float64 CPU tensor validated by :func:`pyrobust.check_transition_matrix`.

- :mod:`~pyrobust.noise.matrices`: the paper's structures (:func:`symmetric`, :func:`pair_flips`,
  :func:`asymmetric`) and the ``T`` of a Table 2 column (:func:`transition_matrix_for`; a data set's
  number of classes and asymmetric structure are its registry entry, :func:`pyrobust.get_dataset`);
- :mod:`~pyrobust.noise.cifar100`: CIFAR-100's superclass tables;
- :mod:`~pyrobust.noise.sampling`: :func:`corrupt` (noisy labels drawn from ``T``) and :func:`noise_rate`;
- :mod:`~pyrobust.noise.clean_subset`: :func:`from_clean_subset` (``T`` counted from trusted labels);
- :mod:`~pyrobust.noise.files`: :func:`load_transition_matrix` (a user's ``T`` from ``.npy``/``.csv``).
"""

from __future__ import annotations

from pyrobust.noise.cifar100 import CIFAR100_COARSE_LABELS, CIFAR100_SUPERCLASS_NAMES
from pyrobust.noise.clean_subset import from_clean_subset
from pyrobust.noise.files import load_transition_matrix
from pyrobust.noise.matrices import (
    ASYMMETRIC_NAMES,
    IMDB_FLIP_0_TO_1,
    NOISE_KINDS,
    asymmetric,
    pair_flips,
    symmetric,
    transition_matrix_for,
)
from pyrobust.noise.sampling import corrupt, noise_rate

__all__ = [
    "ASYMMETRIC_NAMES",
    "CIFAR100_COARSE_LABELS",
    "CIFAR100_SUPERCLASS_NAMES",
    "IMDB_FLIP_0_TO_1",
    "NOISE_KINDS",
    "asymmetric",
    "corrupt",
    "from_clean_subset",
    "load_transition_matrix",
    "noise_rate",
    "pair_flips",
    "symmetric",
    "transition_matrix_for",
]
