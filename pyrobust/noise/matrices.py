"""The paper's transition matrices (Patrini et al., CVPR 2017, section 5.1, Table 2).

Convention: ``T[i, j] = p(noisy = j | clean = i)``, a row-stochastic ``C x C`` matrix. Every builder here
returns ``T`` as a float64 CPU tensor validated by :func:`pyrobust.check_transition_matrix`, and every
builder parameterised by the noise level ``N`` (a probability, ``0 <= N < 1``) accepts it except where
its ``T`` is singular (backward correction needs ``T^{-1}``), which it rejects with the reason.

The paper's structures:

- symmetric: keep the label with probability ``1 - N``, else flip uniformly to one of the ``C - 1`` others;
- ``"mnist"``: 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1, each with probability ``N``;
- ``"cifar10"``: truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog;
- ``"cifar100"``: within each of the 20 superclasses, each class flips to the next one (ascending fine
  index), circularly, with probability ``N``;
- ``"imdb"`` (binary): 0 -> 1 with probability 0.05, 1 -> 0 with probability ``N``.

Which structure a data set uses, and its number of classes, is the data set's registry entry
(:func:`pyrobust.registry.get_dataset`: ``.noise`` and ``.num_classes``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from pyrobust.catalog import HUMAN_NOISE as _HUMAN_NOISE
from pyrobust.catalog import NOISE_KINDS as _NOISE_KIND_LABELS
from pyrobust.noise._validate import _check_class, _check_noise_level, _check_num_classes, _validated
from pyrobust.noise.cifar100 import CIFAR100_COARSE_LABELS, superclass_cycles
from pyrobust.registry import DATASETS as _DATASET_REGISTRY
from pyrobust.registry import get_dataset, list_datasets

__all__ = [
    "ASYMMETRIC_NAMES",
    "IMDB_FLIP_0_TO_1",
    "NOISE_KINDS",
    "asymmetric",
    "pair_flips",
    "symmetric",
    "transition_matrix_for",
]

#: Noise kinds of Table 2, those a ``T`` is built for (the keys of :data:`pyrobust.catalog.NOISE_KINDS` but
#: the human label sets of CIFAR-N, whose ``T`` is counted from their labels: :mod:`pyrobust.data.cifar_n`).
NOISE_KINDS: tuple[str, ...] = tuple(kind for kind in _NOISE_KIND_LABELS if kind not in _HUMAN_NOISE)

#: Flips (clean, noisy) of the paper's pair-flip structures, each taken with probability N.
_PAIR_FLIPS: dict[str, tuple[tuple[int, int], ...]] = {
    # 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1
    "mnist": ((2, 7), (3, 8), (5, 6), (6, 5), (7, 1)),
    # truck(9) -> automobile(1), bird(2) -> airplane(0), deer(4) -> horse(7), cat(3) <-> dog(5)
    "cifar10": ((9, 1), (2, 0), (4, 7), (3, 5), (5, 3)),
}

#: Flip rate 0 -> 1 of the binary (IMDB) structure, fixed by the paper at 5%.
IMDB_FLIP_0_TO_1 = 0.05

#: Names accepted by :func:`asymmetric`.
ASYMMETRIC_NAMES = ("mnist", "cifar10", "cifar100", "imdb", "binary")


def symmetric(num_classes: int, N: float) -> torch.Tensor:
    """Symmetric noise: ``T = (1 - N) I + N / (C - 1) (1 1^T - I)``.

    Row ``i`` keeps class ``i`` with probability ``1 - N`` and spreads ``N`` uniformly over the ``C - 1``
    other classes (Patrini et al. 2017, section 5.2; Table 2's "SYMM." columns). ``T`` is singular at
    ``N = (C - 1) / C``, where every row is uniform and the noisy label says nothing about the clean one;
    that value is rejected.

    Args:
        num_classes: ``C``, an integer ``>= 2``.
        N: the noise level, the probability (a fraction, not a percentage) that a label flips.

    Returns:
        ``T``, a float64 ``C x C`` CPU tensor.

    Raises:
        ValueError: ``num_classes`` is not an integer ``>= 2``, ``N`` is not in ``[0, 1)``, or
            ``N = (C - 1) / C`` (singular ``T``).
    """
    C = _check_num_classes(num_classes)
    N = _check_noise_level(N)
    singular_at = (C - 1) / C
    if math.isclose(N, singular_at, rel_tol=0.0, abs_tol=1e-12):
        raise ValueError(
            f"symmetric noise with {C} classes is singular at N = (C-1)/C = {singular_at:g}: every row of T "
            "is then uniform, so noisy labels carry no information about the clean ones (and T^-1 does "
            "not exist for backward correction); choose another N"
        )
    T = torch.full((C, C), N / (C - 1), dtype=torch.float64)
    T.fill_diagonal_(1.0 - N)
    return _validated(T)


def pair_flips(num_classes: int, pairs: Iterable[tuple[int, int]], N: float) -> torch.Tensor:
    """Pair-flip noise: each listed class ``a`` of ``(a, b)`` flips to ``b`` with probability ``N``.

    ``T[a, a] = 1 - N``, ``T[a, b] = N`` for every pair; classes that are no pair's source keep their
    label (``T[i, i] = 1``). A class may be the source of at most one pair. The flips form chains and
    cycles; a cycle of length ``L`` gives a circulant block with determinant ``(1-N)^L - (-N)^L``, which
    vanishes exactly when ``L`` is even and ``N = 0.5`` (e.g. the 2-cycle ``5 <-> 6`` of MNIST), so that
    combination is rejected. This is the form of every asymmetric ("similar classes") noise of Patrini et
    al. 2017, section 5.1, except the binary one.

    Args:
        num_classes: ``C``, an integer ``>= 2``.
        pairs: ``(clean, noisy)`` class pairs, integers in ``[0, C)``.
        N: the noise level, the probability that a listed class flips, in ``[0, 1)``.

    Returns:
        ``T``, a float64 ``C x C`` CPU tensor.

    Raises:
        ValueError: ``num_classes`` or ``N`` is invalid, a pair is not two classes in ``[0, C)``, a class
            flips to itself or is the source of two pairs, or ``N = 0.5`` with an even cycle (singular).
    """
    C = _check_num_classes(num_classes)
    N = _check_noise_level(N)
    flips: dict[int, int] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"pairs must hold (clean, noisy) class pairs, got {pair!r}")
        a, b = (_check_class(c, C, "pairs") for c in pair)
        if a == b:
            raise ValueError(f"pair ({a}, {b}) flips class {a} to itself; list only flips to another class")
        if a in flips:
            raise ValueError(
                f"class {a} is the source of two flips ({a} -> {flips[a]} and {a} -> {b}); "
                "pair flips send each class to at most one other class; build such a T by hand "
                "and pass it through pyrobust.check_transition_matrix"
            )
        flips[a] = b
    if math.isclose(N, 0.5, rel_tol=0.0, abs_tol=1e-12):
        for cycle in _cycles(flips):
            if len(cycle) % 2 == 0:
                path = " -> ".join(str(c) for c in (*cycle, cycle[0]))
                raise ValueError(
                    f"pair flips {path} form a cycle of even length {len(cycle)}: T is singular at N = 0.5 "
                    "(the cycle's block has eigenvalue 1 - 2N = 0), so T^-1 does not exist for backward "
                    "correction; choose N != 0.5"
                )
    T = torch.eye(C, dtype=torch.float64)
    for a, b in flips.items():
        T[a, a] = 1.0 - N
        T[a, b] = N
    return _validated(T)


def asymmetric(
    name: str, N: float, *, coarse_labels: Sequence[int] | np.ndarray | torch.Tensor | None = None
) -> torch.Tensor:
    """The paper's asymmetric ("similar classes") noise named ``name``, at level ``N`` (section 5.1).

    - ``"mnist"``: 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1 (paper, eq. 17 left); singular at ``N = 0.5``.
    - ``"cifar10"``: truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog; singular at 0.5.
    - ``"cifar100"``: within each superclass, sorted by fine index ``f_1 < ... < f_k``, ``f_m`` flips to
      ``f_{m+1}`` and ``f_k`` to ``f_1``. The superclasses are CIFAR-100's own coarse labels
      (:data:`CIFAR100_COARSE_LABELS`) unless ``coarse_labels``, a fine -> coarse table with one entry per
      class, is given. (The authors' code used blocks of 5 consecutive indices instead, which are not the
      real superclasses.) With 5-class superclasses every cycle is odd, so ``T`` is never singular.
    - ``"imdb"`` / ``"binary"``: ``T = [[0.95, 0.05], [N, 1 - N]]`` (0 -> 1 fixed at 5%, 1 -> 0 at ``N``);
      singular at ``N = 0.95``.

    Args:
        name: one of :data:`ASYMMETRIC_NAMES`, case-insensitive.
        N: the noise level, the probability that a listed class flips, in ``[0, 1)``.
        coarse_labels: for ``"cifar100"`` only, a fine -> coarse table (100 integers).

    Returns:
        ``T``, a float64 ``C x C`` CPU tensor (``C`` = 10, 10, 100 or 2).

    Raises:
        ValueError: unknown ``name``, ``coarse_labels`` given for another structure or not a 100-entry
            table, ``N`` not in ``[0, 1)``, or ``N`` where ``T`` is singular.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in ASYMMETRIC_NAMES:
        raise ValueError(f"unknown asymmetric noise {name!r}; known: {', '.join(ASYMMETRIC_NAMES)}")
    if coarse_labels is not None and key != "cifar100":
        raise ValueError(f"coarse_labels only applies to 'cifar100' noise, not {name!r}")
    if key in _PAIR_FLIPS:
        return pair_flips(10, _PAIR_FLIPS[key], N)
    if key == "cifar100":
        table = CIFAR100_COARSE_LABELS if coarse_labels is None else coarse_labels
        return pair_flips(100, superclass_cycles(table, 100), N)
    N = _check_noise_level(N)
    singular_at = 1.0 - IMDB_FLIP_0_TO_1
    if math.isclose(N, singular_at, rel_tol=0.0, abs_tol=1e-12):
        raise ValueError(
            f"binary noise [[0.95, 0.05], [N, 1-N]] is singular at N = {singular_at:g} "
            "(determinant 0.95 - N): "
            "both rows are then equal; choose another N"
        )
    T = torch.tensor([[1.0 - IMDB_FLIP_0_TO_1, IMDB_FLIP_0_TO_1], [N, 1.0 - N]], dtype=torch.float64)
    return _validated(T)


def transition_matrix_for(
    dataset: str,
    noise: str,
    N: float,
    *,
    coarse_labels: Sequence[int] | np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """The ``T`` of one Table 2 column (Patrini et al. 2017, section 5.1): a data set and a noise kind.

    ``"none"`` gives the identity (and requires ``N == 0``), ``"symmetric"`` gives :func:`symmetric`
    ``(C, N)``, ``"asymmetric"`` gives the data set's structure of :func:`asymmetric` (``mnist5k`` and
    ``mnist`` share the MNIST structure). ``C`` and the structure are the data set's registry entry
    (:func:`pyrobust.registry.get_dataset`: ``.num_classes``, ``.noise``), so a registered data set works
    too.

    Args:
        dataset: a registered data set's name (:func:`pyrobust.list_datasets`).
        noise: a noise kind, one of :data:`NOISE_KINDS` (``"none"``, ``"symmetric"``, ``"asymmetric"``).
        N: the noise level, a probability in ``[0, 1)``.
        coarse_labels: passed to :func:`asymmetric` (CIFAR-100's fine -> coarse table), or None.

    Returns:
        ``T``, a float64 ``C x C`` CPU tensor.

    Raises:
        ValueError: unknown ``dataset`` or ``noise`` (the message lists the known names); ``"none"`` with
            ``N != 0``; ``"asymmetric"`` for a data set without an asymmetric structure (``noise=None``) or
            whose structure's ``C`` differs from its ``num_classes``; or any error of the builder.
    """
    if dataset not in _DATASET_REGISTRY:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(list_datasets())}")
    if noise in _HUMAN_NOISE:
        raise ValueError(f"noise {noise!r} is CIFAR-N's human labels, not a T to inject: its T is counted from "
                         "them (pyrobust.data.cifar_n.human_noise, or `pyrobust corrupt`)")
    if noise not in NOISE_KINDS:
        raise ValueError(f"unknown noise {noise!r}; known: {', '.join(NOISE_KINDS)}")
    info = get_dataset(dataset)
    C = info.num_classes
    if noise == "none":
        if _check_noise_level(N) != 0.0:
            raise ValueError(
                f"noise 'none' means N = 0, got N = {N}; use 'symmetric' or 'asymmetric' for N > 0"
            )
        return _validated(torch.eye(C, dtype=torch.float64))
    if noise == "symmetric":
        return symmetric(C, N)
    if info.transition_file is not None:  # a declared data set's own T, used as given
        from pyrobust.noise.files import load_transition_matrix

        T = load_transition_matrix(info.transition_file).to(torch.float64)
        if T.shape[0] != C:
            raise ValueError(f"data set {dataset!r} has {C} classes but its T ({info.transition_file}) is "
                             f"{T.shape[0]} x {T.shape[1]}")
        return _validated(T)
    if info.noise == "pair_flips":  # a declared data set's default: i -> i+1 (mod C) with probability N
        return pair_flips(C, [(i, (i + 1) % C) for i in range(C)], N)
    if info.noise is None:
        raise ValueError(
            f"data set {dataset!r} has no asymmetric noise structure (its registry entry has noise=None); "
            f"use noise 'none' or 'symmetric', or register it with noise= one of "
            f"{', '.join(ASYMMETRIC_NAMES)}"
        )
    T = asymmetric(info.noise, N, coarse_labels=coarse_labels)
    if T.shape[0] != C:
        raise ValueError(
            f"data set {dataset!r} has {C} classes but its asymmetric noise {info.noise!r} is "
            f"{T.shape[0]} x {T.shape[0]}"
        )
    return T


def _cycles(flips: dict[int, int]) -> list[tuple[int, ...]]:
    """Cycles of the functional graph ``a -> flips[a]`` (each class has at most one out-edge)."""
    cycles, done = [], set()
    for start in flips:
        path, node = [], start
        while node in flips and node not in done and node not in path:
            path.append(node)
            node = flips[node]
        if node in path:
            cycles.append(tuple(path[path.index(node) :]))
        done.update(path)
    return cycles
