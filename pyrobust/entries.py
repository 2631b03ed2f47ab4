"""What a registry holds: a training method, an estimator of T, a data set (see :mod:`pyrobust.registry`).

Torch-free: code is referenced as ``"package.module:attribute"`` strings (:func:`resolve`), imported on
first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["DatasetInfo", "Estimator", "Method", "Ref", "Remote", "resolve"]

#: A callable, or ``"package.module:attribute"`` naming one (imported on first use).
Ref = str | Callable[..., Any]
Transition = Literal["true", "estimated"] | None


def resolve(ref: Ref) -> Any:
    """The object a :data:`Ref` names: a callable as it is, ``"module:attr.sub"`` imported.

    Raises:
        ValueError: ``ref`` is a string without ``:``.
        ImportError, AttributeError: the module or attribute does not exist.
    """
    if not isinstance(ref, str):
        return ref
    module, sep, attribute = ref.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"a reference to code must read 'package.module:attribute', got {ref!r}")
    obj: Any = importlib.import_module(module)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(
            f"a registered name is a lower-case Python identifier (it is used in file paths, configs and "
            f"command lines), got {name!r}"
        )
    return name


@dataclass(frozen=True)
class Method:
    """A training method: a loss, and what it needs from the experiment (one row of Table 2).

    Attributes:
        name: the method's name in configs, command lines and result files (``forward_est``).
        loss: a factory of the ``nn.Module`` loss, called ``loss(reduction=...)`` when ``transition`` is
            None and ``loss(T, reduction=...)`` otherwise, ``T`` a float64 ``C x C`` tensor
            (``T[i, j] = p(noisy = j | clean = i)``); the module is called as ``loss(logits, target)``.
        label: the row's label in reports (``forward T̂``).
        transition: which ``T`` the loss needs: None, ``"true"`` (the one that corrupted the labels) or
            ``"estimated"`` (``T_hat``, estimated from a network trained with plain cross-entropy).
        bn_head: the network needs a batch-norm layer on its logits (unhinged, sigmoid; paper sec. 5.2).
        counterpart: for an estimated-T method, the method it approximates with ``T_hat``
            (``forward_est`` -> ``forward``); the report compares the two.
        inverts_T: the loss multiplies by ``T^-1`` (backward correction): the experiment mixes an
            ill-conditioned ``T`` with the identity (``identity_mix=``) and bounds it (``clip=``).
        estimator: for an estimated-T method, the registered estimator whose ``T_hat`` it trains with
            (``forward_dual_t`` -> ``dual_t``); None: the data set's own (the paper's, ``forward_est``).
        learns_T: the loss learns ``T`` while the network trains (T-Revision, VolMinNet): its parameters are
            trained with the network's, and the record holds the ``T`` it ends with as ``T_hat``. With
            ``transition`` None the loss is called ``loss(num_classes=C, reduction=...)``.
    """

    name: str
    loss: Ref = field(repr=False)
    label: str = ""
    transition: Transition = None
    bn_head: bool = False
    counterpart: str | None = None
    inverts_T: bool = False
    estimator: str | None = None
    learns_T: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.transition not in (None, "true", "estimated"):
            raise ValueError(f"method {self.name!r}: transition must be None, 'true' or 'estimated', got "
                             f"{self.transition!r}")
        if self.counterpart is not None and self.transition != "estimated":
            raise ValueError(f"method {self.name!r}: only an estimated-T method has a counterpart")
        if self.estimator is not None and self.transition != "estimated":
            raise ValueError(f"method {self.name!r}: only an estimated-T method names an estimator")
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def make_loss(self, T: Any = None, reduction: str = "mean", **options: Any) -> Any:
        """The training loss, an ``nn.Module`` called as ``loss(logits, target)``.

        Args:
            T: the ``C x C`` matrix the method corrects with (required iff ``transition`` is not None).
            reduction: ``"mean"``, ``"sum"`` or ``"none"``, as ``nn.CrossEntropyLoss``.
            options: further keyword arguments of the loss (``identity_mix``, ``clip``, ...).

        Raises:
            ValueError: ``T`` is missing for a method that needs one.
        """
        factory = resolve(self.loss)
        if self.transition is None:
            return factory(reduction=reduction, **options)
        if T is None:
            which = "the true T" if self.transition == "true" else "the estimate T_hat"
            raise ValueError(f"method {self.name!r} corrects the loss with {which}: pass T (C x C), got None")
        return factory(T, reduction=reduction, **options)


@dataclass(frozen=True)
class Estimator:
    """An estimator of the transition matrix from a network's noisy class probabilities.

    Attributes:
        name: the name given to ``estimate_transition_matrix(probs, method=name)``.
        function: called ``function(probs, labels=..., **options)`` with ``probs`` a float ``n x C``
            tensor of ``p(noisy | x)`` (validated), ``labels`` the ``n`` noisy labels (int64) or None,
            and the options of :func:`pyrobust.estimate_transition_matrix` (``quantile``,
            ``filter_outliers``, ``row_normalize``; accept ``**options`` to ignore the others); returns
            ``T_hat`` (``C x C``).
        label: its label in reports (``α-percentile``).
        needs_labels: it reads the noisy labels, not only ``probs``.
    """

    name: str
    function: Ref = field(repr=False)
    label: str = ""
    needs_labels: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not self.label:
            object.__setattr__(self, "label", self.name)


@dataclass(frozen=True)
class Remote:
    """One downloadable file of a data set: its canonical name, canonical URL and published SHA-256."""

    filename: str
    url: str
    sha256: str


@dataclass(frozen=True)
class DatasetInfo:
    """A data set: how to load it, and how the experiment trains on it by default.

    Attributes:
        name: the name given to ``pyrobust.data.load(name)`` (``mnist5k``).
        loader: called ``loader(root)`` (the data root, a path or None) returning a
            :class:`pyrobust.data.Dataset`; raises ``DatasetNotAvailable`` when its files are absent.
        num_classes: C.
        label: its label in reports (``MNIST-5k``).
        noise: the structure of its asymmetric noise, a name of :func:`pyrobust.noise.asymmetric`
            (``"mnist"``: 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1), or None where it has none.
        training: the paper's training settings (keys of ``pyrobust.experiment.TrainConfig``: ``model``,
            ``optimizer``, ``lr``, ``epochs``, ...), section 5.1.
        networks: the networks of its Table 2 block (the first is the default).
        columns: its Table 2 columns, ``(noise kind, N)`` pairs.
        seeds: how many times the paper repeats a run.
        estimator: the paper's estimator of ``T_hat`` for it (``percentile``, or ``argmax`` for CIFAR-100).
        runtime: minutes one training job may take (a cluster scheduler's time limit).
        files: its downloadable files; empty for a data set that ships inside a package.
        embedded: it ships inside an installed package: always available, nothing to download.
        paper_reference: the paper's data set whose Table 2 numbers are printed beside it (``mnist`` for
            the 5,000-digit subset ``mnist5k``); defaults to ``name``.
        transition_file: a ``T`` file (``.csv``/``.npy``, :func:`pyrobust.noise.load_transition_matrix`)
            that its ``asymmetric`` noise uses as given, or None.
        custom: declared in a configuration (:mod:`pyrobust.custom_datasets`), not one of the paper's: its
            ``none`` column's true ``T`` is counted from its trusted labels, where it has some.
    """

    name: str
    loader: Ref = field(repr=False)
    num_classes: int = 0
    label: str = ""
    noise: str | None = None
    training: Mapping[str, Any] = field(default_factory=dict, repr=False)
    networks: tuple[str, ...] = ("fc",)
    columns: tuple[tuple[str, float], ...] = (("none", 0.0),)
    seeds: int = 1
    estimator: str = "percentile"
    runtime: int = 60
    files: tuple[Remote, ...] = field(default=(), repr=False)
    embedded: bool = False
    paper_reference: str | None = None
    transition_file: str | None = None
    custom: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"data set {self.name!r}: num_classes must be an integer >= 2, got {self.num_classes!r}")
        if not self.networks:
            raise ValueError(f"data set {self.name!r}: give at least one network")
        object.__setattr__(self, "training", MappingProxyType(dict(self.training)))
        object.__setattr__(self, "networks", tuple(self.networks))
        object.__setattr__(self, "columns", tuple((str(k), float(n)) for k, n in self.columns))
        object.__setattr__(self, "files", tuple(self.files))
        if not self.label:
            object.__setattr__(self, "label", self.name)
        if self.paper_reference is None:
            object.__setattr__(self, "paper_reference", self.name)

    def load(self, root: Any = None) -> Any:
        """``loader(root)``: the loaded :class:`pyrobust.data.Dataset`."""
        return resolve(self.loader)(root)
