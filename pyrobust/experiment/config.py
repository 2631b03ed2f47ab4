"""The settings of one training run (:class:`TrainConfig`), by default the paper's (section 5.1).

The per-data-set defaults come from the catalogue (``pyrobust.registry.get_dataset(name).training``), the
known data sets, networks and noise kinds from the registries and :mod:`pyrobust.catalog`. Importing this
module imports no torch.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from pyrobust.catalog import NETWORKS, NOISE_KINDS
from pyrobust.registry import get_dataset, list_datasets

__all__ = ["OPTIMIZERS", "TrainConfig"]

#: The optimisers :class:`TrainConfig` knows (section 5.1: AdaGrad for MNIST and IMDB, SGD for CIFAR).
OPTIMIZERS = ("adagrad", "sgd")


def _check_dataset(dataset: str) -> None:
    known = list_datasets()
    if dataset not in known:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(known)}")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one run. Build it with :meth:`paper` to start from the paper's defaults (sec. 5.1).

    Optimiser: ``adagrad`` is ``p -= lr * g / (sqrt(sum g^2) + adagrad_eps)`` with the sum starting at 0:
    Duchi et al.'s ``delta * I + diag(G)^(1/2)``, and the Keras 1/2.0 ``Adagrad(epsilon=delta)`` that the
    authors ran. That is torch's ``Adagrad(eps=delta, initial_accumulator_value=0)``; newer Keras/TF instead
    start the accumulator at 0.1 (``initial_accumulator_value``), which damps the first steps — not the paper.
    ``sgd`` is heavy-ball momentum with L2 weight decay and the learning rate multiplied by ``lr_gamma`` at
    each epoch in ``lr_milestones``.

    Units: ``N``, ``val_fraction``, ``dropout`` and ``backward_clip`` are probabilities; ``epochs`` counts
    passes over the training split; ``batch_size`` and ``eval_batch_size`` count examples; ``lr`` is the
    step size of the first epoch.

    Raises:
        ValueError: an unknown data set, network, noise kind or optimiser, or a value out of range.
        RuntimeError: ``device`` is not a device string torch understands (torch's own error).
    """

    dataset: str
    model: str
    method: str
    noise: str = "none"
    N: float = 0.0
    seed: int = 0
    epochs: int = 40
    batch_size: int = 128
    optimizer: str = "adagrad"
    lr: float = 0.01
    adagrad_eps: float = 1e-6
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    #: None: the model's paper default (fc 0.5 — authors' code 0.2; embedding 0.8; lstm 0.5)
    dropout: float | None = None
    #: random 32x32 crops of the 4-pixel padded image + horizontal flips (CIFAR)
    augment: bool = False
    val_fraction: float = 0.1
    #: backward corrections invert T; above this 1-norm condition number T is mixed with the identity
    #: (``pyrobust.losses.conditioning.identity_mix_for``): the loss's own limit,
    #: ``pyrobust.losses.MAX_CONDITION_NUMBER`` (a test checks they agree; this module imports no torch).
    backward_max_condition: float = 100.0
    #: backward corrections clip softmax to [eps, 1 - eps] before the log, as the authors' Keras code
    #: (1e-7): where T^-1 has negative entries the exact loss is unbounded below and training collapses
    #: (MNIST-5k, asymmetric N=0.6: backward_est at chance). 0 = the exact loss.
    backward_clip: float = 1e-7
    #: methods that learn T (t_revision, volminnet): SGD with momentum 0.9 on T's logits at this rate (the
    #: VolMinNet authors' optimiser of T)
    transition_lr: float = 0.01
    device: str = "auto"
    #: None: leave torch's thread count as it is
    threads: int | None = None
    #: CUDA only: bfloat16 autocast (and channels_last for the ResNets)
    amp: bool = True
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        _check_dataset(self.dataset)
        if self.model not in NETWORKS:
            raise ValueError(f"unknown model {self.model!r}; known models: {', '.join(NETWORKS)}")
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"unknown noise {self.noise!r}; known: {', '.join(NOISE_KINDS)}")
        if not 0.0 <= self.N <= 1.0:
            raise ValueError(f"N is a probability, got {self.N}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be 'adagrad' or 'sgd', got {self.optimizer!r}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.lr <= 0 or self.adagrad_eps <= 0 or self.transition_lr <= 0 or self.backward_max_condition < 1:
            raise ValueError("lr, adagrad_eps and transition_lr must be > 0 and backward_max_condition >= 1")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.device != "auto":
            import torch

            torch.device(self.device)  # raises a clear RuntimeError for a malformed device string
        object.__setattr__(self, "lr_milestones", tuple(int(m) for m in self.lr_milestones))

    @classmethod
    def paper(cls, dataset: str, method: str, **overrides: Any) -> TrainConfig:
        """The paper's settings for ``dataset`` (its catalogue entry's ``training``), then ``overrides``.

        Args:
            dataset: a registered data set (``mnist5k``, ``cifar10``, ...).
            method: a method name (checked when training, not here).
            overrides: any fields of :class:`TrainConfig`.

        Raises:
            ValueError: an unknown data set (the message lists the known ones), an unknown key in
                ``overrides``, or a field out of range.
        """
        _check_dataset(dataset)
        unknown = set(overrides) - set(cls.keys())
        if unknown:
            raise ValueError(f"unknown config key(s) {sorted(unknown)}; known: {', '.join(cls.keys())}")
        settings = dict(get_dataset(dataset).training)
        return cls(**{"dataset": dataset, "method": method, **settings, **overrides})

    @classmethod
    def keys(cls) -> list[str]:
        """The field names, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def parse_override(cls, assignment: str) -> tuple[str, Any]:
        """Parse ``key=value`` (a ``--set`` option) into a typed pair, the type taken from the field.

        int, float, str, bool (``true/false/1/0/yes/no``), a tuple of ints written ``40,80`` (empty: ``()``),
        and ``none``/``null``/empty for the optional fields.

        Raises:
            ValueError: no ``=``, an unknown key, or a value that does not parse as the field's type.
        """
        key, sep, text = assignment.partition("=")
        key, text = key.strip(), text.strip()
        hints = typing.get_type_hints(cls)
        if not sep or key not in hints:
            raise ValueError(f"--set expects key=value with key in: {', '.join(cls.keys())}; got {assignment!r}")
        hint = hints[key]
        args = typing.get_args(hint)
        if type(None) in args:
            if text.lower() in ("none", "null", ""):
                return key, None
            hint = next(a for a in args if a is not type(None))
        try:
            if hint is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return key, text.lower() in ("true", "1", "yes")
            if typing.get_origin(hint) is tuple:
                return key, tuple(int(v) for v in text.replace(" ", "").split(",") if v)
            if hint is int:
                return key, int(text)
            if hint is float:
                return key, float(text)
            return key, text
        except ValueError:
            name = getattr(hint, "__name__", str(hint))
            raise ValueError(f"--set {key}: expected {name}, got {text!r}") from None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again). Raises ``ValueError`` as the constructor."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``lr_milestones`` as a list)."""
        d = dataclasses.asdict(self)
        d["lr_milestones"] = list(self.lr_milestones)
        return d
