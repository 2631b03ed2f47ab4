"""Clothing1M, the paper's Table 3 (Patrini et al., CVPR 2017, section 5.3): one run per call, one JSON record.

The paper fine-tunes an ImageNet-pretrained ResNet-50 (:func:`pyrobust.models.resnet50`, weights from a
local file) on Clothing1M's 14 classes with SGD, learning rate ``1e-3`` for 5 epochs then ``1e-4`` for 5,
momentum 0.9, batch 32; on the clean 50k with weight decay ``5e-2`` and data augmentation (random 224 x 224
crops and horizontal flips), on the noisy 1M with weight decay ``1e-3`` only. The corrections use the ``T``
counted from the clean training images that also carry a noisy label ("we exploit the curated labels of
50k and their noisy versions in 1M": :func:`pyrobust.data.clothing1m.transition_from_clean`), or a
``T_hat`` of a registered estimator (``pyrobust.estimate_transition_matrix``) applied to the softmax of the
cross-entropy network trained on the noisy 1M (:func:`estimate`). Table 3's ResNet rows:

====  =============  ====================  =========  =====================================
 #    loss           init                  training   here (``config/clothing1m.yaml`` run)
====  =============  ====================  =========  =====================================
 4    cross-entropy  ImageNet              1M         ``ce_1m`` (also saves the softmax for T_hat)
 5    backward       ImageNet              1M         ``backward_1m`` (T from the clean 50k)
 6    forward        ImageNet              1M         ``forward_1m`` (T from the clean 50k)
 7    cross-entropy  ImageNet              50k        ``ce_50k``
 8    cross-entropy  #6                    50k        ``forward_1m_ft_50k`` (fine-tunes #6's weights)
 -    backward T̂     ImageNet              1M         ``backward_est_1m`` (T_hat from ``ce_1m``)
 -    forward T̂      ImageNet              1M         ``forward_est_1m``
====  =============  ====================  =========  =====================================

Model selection: the paper validates every network on held-out data during training and keeps the best
epoch (section 5.1, "common to all experiments"); Clothing1M comes with a clean validation set, "14k"
(section 5.3), so the kept epoch is the one with the lowest cross-entropy of the network's own softmax on
those clean labels (``selection="val_loss"``; the corrected losses are estimators of that clean loss).
The accuracy reported is on the clean "10k" test set.

Run it in one process, or data-parallel with one process per GPU (the results agree up to floating-point
summation order; :mod:`pyrobust.experiment.images` says how)::

    python -m pyrobust.experiment.clothing1m train forward_1m --config config/clothing1m.yaml
    torchrun --nproc-per-node 4 -m pyrobust.experiment.clothing1m train forward_1m --config config/clothing1m.yaml
    python -m pyrobust.experiment.clothing1m estimate ce_1m --config config/clothing1m.yaml --estimator percentile

Importing this package imports torch but not torchvision (which pyrobust does not use). One job a module:
:mod:`~.config` (the settings of a run and the YAML file of runs), :mod:`~.checkpoints` (saving and
loading the kept weights), :mod:`~.train` (one run and its record), :mod:`~.estimation` (``T_hat`` from the
softmax of Table 3's #4), :mod:`~.command_line` (``python -m pyrobust.experiment.clothing1m``, also
``pyrobust clothing1m``).
"""

from __future__ import annotations

from pyrobust.experiment.clothing1m.checkpoints import load_checkpoint, save_checkpoint
from pyrobust.experiment.clothing1m.command_line import build_parser as build_parser
from pyrobust.experiment.clothing1m.command_line import main
from pyrobust.experiment.clothing1m.config import NUM_CLASSES as NUM_CLASSES
from pyrobust.experiment.clothing1m.config import TRANSITIONS as TRANSITIONS
from pyrobust.experiment.clothing1m.config import (
    INITS,
    PAPER_TRAINING,
    TRAINING_SETS,
    Clothing1MConfig,
    load_config,
)
from pyrobust.experiment.clothing1m.estimation import estimate
from pyrobust.experiment.clothing1m.train import train_clothing1m

__all__ = [
    "INITS",
    "PAPER_TRAINING",
    "TRAINING_SETS",
    "Clothing1MConfig",
    "estimate",
    "load_checkpoint",
    "load_config",
    "main",
    "save_checkpoint",
    "train_clothing1m",
]
