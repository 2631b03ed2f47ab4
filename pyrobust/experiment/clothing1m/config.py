"""The settings of one Clothing1M run (:class:`Clothing1MConfig`, the paper's by default) and the YAML file
of named runs that holds them (``config/clothing1m.yaml``, :func:`load_config`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrobust.experiment.images import SELECTIONS
from pyrobust.registry import get_estimator, get_method

__all__ = [
    "INITS",
    "NUM_CLASSES",
    "PAPER_TRAINING",
    "TRAINING_SETS",
    "TRANSITIONS",
    "Clothing1MConfig",
    "load_config",
]

#: Clothing1M has 14 classes.
NUM_CLASSES = 14

#: The training sets: ``noisy`` is the 1M web-labelled images, ``clean`` the 50k (47,570) clean ones.
TRAINING_SETS = {"noisy": "1M", "clean": "50k"}

#: The paper's per-training-set settings (section 5.3): "When we train with 50k we use weight decay of
#: 5e-2 and data augmentation, while with 1M we use only weight decay of 1e-3".
PAPER_TRAINING: dict[str, dict[str, Any]] = {
    "noisy": {"weight_decay": 1e-3, "augment": False},
    "clean": {"weight_decay": 5e-2, "augment": True},
}

#: Where the weights start: ImageNet (``imagenet_weights``), a checkpoint of an earlier run
#: (``init_checkpoint``: Table 3's #8 starts from #6), or a fresh initialisation (tests, other networks).
INITS = ("imagenet", "checkpoint", "scratch")

#: Where the ``T`` of the corrections with "true" ``T`` comes from: counted on the clean training images
#: that also have a noisy label (the paper's), or on every image with both labels.
TRANSITIONS = {"clean_train": "train", "clean_all": "all"}


@dataclass(frozen=True)
class Clothing1MConfig:
    """Every setting of one Clothing1M run; the defaults are the paper's (section 5.3).

    Units: ``lr`` is the step size of the first epochs, multiplied by ``lr_gamma`` after each epoch of
    ``lr_milestones`` (``1e-3`` for epochs 1-5, ``1e-4`` for 6-10); ``batch_size`` counts the images of one
    optimiser step over *all* processes (``batch_size / world size`` per process); ``eval_batch_size`` per
    process; ``resize``/``crop`` in pixels (shorter side resized, then a ``crop x crop`` crop);
    ``weight_decay`` is the L2 coefficient of SGD on every parameter; ``quantile`` a fraction.

    ``weight_decay`` and ``augment`` left at None take the paper's value for ``train_set``
    (:data:`PAPER_TRAINING`). Momentum is torch's (``v = m v + g; p -= lr v``); the authors' Keras SGD
    (``v = m v - lr g``) differs only right after the learning rate drops.

    Raises:
        ValueError: an unknown method, estimator, training set, initialisation, ``T`` source, selection,
            batch-norm mode, network or device, a value out of range, or ``init`` without its file key.
    """

    method: str = "cross_entropy"
    train_set: str = "noisy"
    #: ``resnet50`` (the paper's), or any network of ``pyrobust.models.build_model`` (tests use small ones)
    model: str = "resnet50"
    init: str = "imagenet"
    #: the local ImageNet ResNet-50 state dict (torchvision's ``resnet50-0676ba61.pth``), for init=imagenet
    imagenet_weights: str | None = None
    #: a checkpoint written by an earlier run (``--checkpoint``), for init=checkpoint
    init_checkpoint: str | None = None
    #: the data root holding ``clothing1m/`` (or the data set's folder); None: ``$PYROBUST_DATA``, ``./data``
    data_root: str | None = None
    epochs: int = 10
    lr: float = 1e-3
    lr_milestones: tuple[int, ...] = (5,)
    lr_gamma: float = 0.1
    momentum: float = 0.9
    batch_size: int = 32
    weight_decay: float | None = None
    augment: bool | None = None
    resize: int = 256
    crop: int = 224
    transition: str = "clean_train"
    estimator: str = "percentile"
    quantile: float = 0.97
    selection: str = "val_loss"
    #: "global": BN statistics over the global batch (SyncBatchNorm); "frozen": BN layers in eval mode
    batch_norm: str = "global"
    backward_max_condition: float = 100.0
    backward_clip: float = 1e-7
    seed: int = 0
    device: str = "auto"
    #: DataLoader worker processes per training process (JPEG decoding)
    workers: int = 8
    eval_batch_size: int = 256
    #: CUDA only: bfloat16 autocast and channels-last
    amp: bool = True
    threads: int | None = None
    log_every: int = 500
    #: the row of Table 3 this run reproduces (recorded only), None for others
    row: int | None = None

    def __post_init__(self) -> None:
        from pyrobust.models import IMAGENET_MODELS, MODELS

        get_method(self.method)  # ValueError listing the known methods
        get_estimator(self.estimator)
        choices = {"train_set": TRAINING_SETS, "init": INITS, "transition": TRANSITIONS,
                   "selection": SELECTIONS, "batch_norm": ("global", "frozen"),
                   "device": ("auto", "cuda", "cpu"), "model": MODELS + IMAGENET_MODELS}
        for key, known in choices.items():
            if getattr(self, key) not in known:
                raise ValueError(f"{key} must be one of {', '.join(known)}; got {getattr(self, key)!r}")
        if self.init == "imagenet" and self.model != "resnet50":
            raise ValueError(f"init 'imagenet' loads ResNet-50 weights: model must be resnet50, got {self.model!r}")
        for name in ("epochs", "batch_size", "eval_batch_size", "resize", "crop"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.crop > self.resize:
            raise ValueError(f"crop ({self.crop}) must not exceed resize ({self.resize})")
        if self.lr <= 0 or self.momentum < 0 or not 0 < self.quantile <= 1 or self.backward_max_condition < 1:
            raise ValueError("need lr > 0, momentum >= 0, 0 < quantile <= 1 and backward_max_condition >= 1")
        if self.workers < 0 or self.log_every < 0 or (self.threads is not None and self.threads < 1):
            raise ValueError("workers and log_every must be >= 0, threads >= 1")
        defaults = PAPER_TRAINING[self.train_set]
        if self.weight_decay is None:
            object.__setattr__(self, "weight_decay", defaults["weight_decay"])
        if self.augment is None:
            object.__setattr__(self, "augment", defaults["augment"])
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        object.__setattr__(self, "lr_milestones", tuple(int(m) for m in self.lr_milestones))

    @classmethod
    def keys(cls) -> list[str]:
        """The field names, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    def replace(self, **changes: Any) -> Clothing1MConfig:
        """A copy with ``changes`` applied (validated again; ``weight_decay``/``augment`` as given or kept)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``lr_milestones`` as a list)."""
        d = dataclasses.asdict(self)
        d["lr_milestones"] = list(self.lr_milestones)
        return d


#: Keys of a run in the config file that are not :class:`Clothing1MConfig` fields.
_RUN_KEYS = {"save_probs", "init_from"}


def load_config(
    path: str | os.PathLike[str], run: str, overrides: dict[str, Any] | None = None
) -> tuple[Clothing1MConfig, dict[str, Any]]:
    """Read ``config/clothing1m.yaml``-style ``path`` and build the config of its run ``run``.

    The file's top-level keys are :class:`Clothing1MConfig` fields shared by every run, plus ``out_dir``
    (where outputs go by default) and ``runs`` (name -> the run's own fields, plus ``save_probs: true`` to
    save the softmax on the training set and ``init_from: <run>`` to start from that run's checkpoint).
    Precedence: ``overrides`` > the run's fields > the shared fields > the dataclass defaults.

    Returns:
        The config, and the run's options: ``out_dir`` (Path), ``save_probs`` (bool), ``init_from`` (a run
        name or None).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a YAML mapping, an unknown run (the message lists them), an unknown key (named with
            the file), or an invalid value.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of settings")
    raw = dict(raw)
    runs = raw.pop("runs", None) or {}
    out_dir = Path(raw.pop("out_dir", "results/clothing1m"))
    if run not in runs:
        raise ValueError(f"{path}: no run {run!r}; runs: {', '.join(runs) or '(none)'}")
    entry = dict(runs[run] or {})
    options = {"out_dir": out_dir, "save_probs": bool(entry.pop("save_probs", False)),
               "init_from": entry.pop("init_from", None)}
    settings = {**raw, **entry, **(overrides or {})}
    unknown = sorted(set(settings) - set(Clothing1MConfig.keys()))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: {', '.join(Clothing1MConfig.keys())}")
    if options["init_from"] is not None:
        settings["init"] = "checkpoint"
        if "init_checkpoint" not in (overrides or {}):
            settings["init_checkpoint"] = str(out_dir / f"{options['init_from']}.pt")
    return Clothing1MConfig(**settings), options
