"""Label-noise models of the paper (section 5.1) and sampling of noisy labels.

Convention: ``T[i, j] = p(noisy = j | clean = i)``, a row-stochastic ``C x C`` matrix. Every builder here
returns ``T`` as a float64 CPU tensor validated by :func:`pyrobust.check_transition_matrix`, and every
builder parameterised by the noise level ``N`` accepts ``0 <= N < 1`` except where its ``T`` is singular
(backward correction needs ``T^{-1}``), which it rejects with the reason.

The paper's structures (section 5.1, Table 2):

- symmetric: keep the label with probability ``1 - N``, else flip uniformly to one of the ``C - 1`` others;
- ``"mnist"``: 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1, each with probability ``N``;
- ``"cifar10"``: truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog;
- ``"cifar100"``: within each of the 20 superclasses, each class flips to the next one (ascending fine
  index), circularly, with probability ``N``;
- ``"imdb"`` (binary): 0 -> 1 with probability 0.05, 1 -> 0 with probability ``N``.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np
import torch

from pyrobust._checks import check_transition_matrix

__all__ = [
    "ASYMMETRIC_NAMES",
    "CIFAR100_COARSE_LABELS",
    "CIFAR100_SUPERCLASS_NAMES",
    "DATASETS",
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

Labels = TypeVar("Labels", torch.Tensor, np.ndarray)

#: Noise kinds of Table 2.
NOISE_KINDS = ("none", "symmetric", "asymmetric")

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

#: Data sets of Table 2 -> (number of classes, asymmetric structure).
DATASETS: dict[str, tuple[int, str]] = {
    "mnist5k": (10, "mnist"),
    "mnist": (10, "mnist"),
    "cifar10": (10, "cifar10"),
    "cifar100": (100, "cifar100"),
    "imdb": (2, "imdb"),
}

#: CIFAR-100's 20 superclasses ("coarse labels"), in the order of the data set's coarse label indices.
CIFAR100_SUPERCLASS_NAMES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
)  # fmt: skip

#: CIFAR-100 fine label -> coarse label (superclass), as stored in the data set's own ``coarse_labels``;
#: e.g. aquatic mammals (0) = {beaver 4, dolphin 30, otter 55, seal 72, whale 95}.
CIFAR100_COARSE_LABELS = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)  # fmt: skip

# Largest number of classes load_transition_matrix accepts (a C x C float64 file of 10^8 entries is 800 MB).
_MAX_CLASSES_IN_FILE = 10_000


# --------------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------------


def symmetric(num_classes: int, N: float) -> torch.Tensor:
    """Symmetric noise: ``T = (1 - N) I + N / (C - 1) (1 1^T - I)``.

    Row ``i`` keeps class ``i`` with probability ``1 - N`` and spreads ``N`` uniformly over the ``C - 1``
    other classes (paper, section 5.2). ``T`` is singular at ``N = (C - 1) / C``, where every row is
    uniform and the noisy label says nothing about the clean one; that value is rejected.

    Returns a float64 ``C x C`` tensor.
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
    combination is rejected.

    Returns a float64 ``C x C`` tensor.
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
    """The paper's asymmetric ("similar classes") noise named ``name``, at level ``N``.

    - ``"mnist"``: 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1 (paper, eq. 17 left); singular at ``N = 0.5``.
    - ``"cifar10"``: truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog; singular at 0.5.
    - ``"cifar100"``: within each superclass, sorted by fine index ``f_1 < ... < f_k``, ``f_m`` flips to
      ``f_{m+1}`` and ``f_k`` to ``f_1``. The superclasses are CIFAR-100's own coarse labels
      (:data:`CIFAR100_COARSE_LABELS`) unless ``coarse_labels``, a fine -> coarse table with one entry per
      class, is given. (The authors' code used blocks of 5 consecutive indices instead, which are not the
      real superclasses.) With 5-class superclasses every cycle is odd, so ``T`` is never singular.
    - ``"imdb"`` / ``"binary"``: ``T = [[0.95, 0.05], [N, 1 - N]]`` (0 -> 1 fixed at 5%, 1 -> 0 at ``N``);
      singular at ``N = 0.95``.

    Returns a float64 ``C x C`` tensor.
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
        return pair_flips(100, _superclass_cycles(table, 100), N)
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
    """The ``T`` of one Table 2 column: ``dataset`` in :data:`DATASETS`, ``noise`` in :data:`NOISE_KINDS`.

    ``"none"`` gives the identity (and requires ``N == 0``), ``"symmetric"`` gives
    :func:`symmetric` ``(C, N)``, ``"asymmetric"`` gives the data set's structure of :func:`asymmetric`
    (``mnist5k`` and ``mnist`` share the MNIST structure). Returns a float64 ``C x C`` tensor.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    if noise not in NOISE_KINDS:
        raise ValueError(f"unknown noise {noise!r}; known: {', '.join(NOISE_KINDS)}")
    C, structure = DATASETS[dataset]
    if noise == "none":
        if _check_noise_level(N) != 0.0:
            raise ValueError(
                f"noise 'none' means N = 0, got N = {N}; use 'symmetric' or 'asymmetric' for N > 0"
            )
        return _validated(torch.eye(C, dtype=torch.float64))
    if noise == "symmetric":
        return symmetric(C, N)
    return asymmetric(structure, N, coarse_labels=coarse_labels)


def load_transition_matrix(path: str | os.PathLike[str]) -> torch.Tensor:
    """Load a user-supplied ``T`` from a ``.npy`` or ``.csv`` file (comma-separated rows, no header).

    The file is untrusted: ``.npy`` is read with ``allow_pickle=False`` and its shape checked from the
    header before the data is read; every error names the file. Returns a float64 ``C x C`` tensor.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".npy", ".csv"):
        raise ValueError(f"{path}: unsupported transition matrix file type {suffix!r}; use .npy or .csv")
    try:
        if suffix == ".npy":
            header = np.load(path, mmap_mode="r", allow_pickle=False)
            _check_loaded_shape(header.shape, path)
            if header.dtype.kind not in "fiu":
                raise ValueError(f"{path}: transition matrix must hold numbers, got dtype {header.dtype}")
            array = np.array(header, dtype=np.float64)
        else:
            if os.path.getsize(path) > 40 * _MAX_CLASSES_IN_FILE**2:
                raise ValueError(f"{path}: file too large for a transition matrix")
            array = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
            _check_loaded_shape(array.shape, path)
    except (OSError, ValueError) as err:
        if path in str(err):
            raise
        raise ValueError(f"{path}: cannot read a transition matrix: {err}") from err
    return _validated(torch.from_numpy(array), name=f"transition matrix in {path}")


def from_clean_subset(
    clean_labels: torch.Tensor | np.ndarray,
    noisy_labels: torch.Tensor | np.ndarray,
    num_classes: int,
) -> torch.Tensor:
    """``T`` counted from examples that carry both a trusted and a noisy label (paper, section 5.3).

    ``T[i, j] = #{clean = i, noisy = j} / #{clean = i}``. Every class must occur among the clean labels,
    otherwise its row is unknown. Returns a float64 ``C x C`` tensor.
    """
    C = _check_num_classes(num_classes)
    clean = _labels_as_tensor(clean_labels, C, "clean_labels")
    noisy = _labels_as_tensor(noisy_labels, C, "noisy_labels")
    if clean.shape != noisy.shape:
        raise ValueError(
            f"clean_labels and noisy_labels differ in length: {clean.numel()} vs {noisy.numel()}"
        )
    counts = torch.bincount(clean * C + noisy, minlength=C * C).reshape(C, C).to(torch.float64)
    rows = counts.sum(dim=1, keepdim=True)
    missing = torch.nonzero(rows.squeeze(1) == 0).flatten().tolist()
    if missing:
        raise ValueError(f"classes {missing} have no clean example, so their rows of T cannot be counted")
    return _validated(counts / rows)


# --------------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------------


def corrupt(labels: Labels, T: torch.Tensor | np.ndarray, seed: int) -> Labels:
    """Sample noisy labels ``noisy[k] ~ T[labels[k], :]`` independently for every example.

    Bit-for-bit reproducible: the only randomness is one uniform ``u[k]`` per example drawn from a private
    ``torch.Generator`` seeded with ``seed`` (CPU, float64), so the result depends on nothing else in the
    process (global RNG state, device, input container). ``noisy[k]`` is the inverse CDF of row
    ``labels[k]`` at ``u[k]``, found for all examples by one ``searchsorted`` (O(n log C), no n x C buffer).

    ``labels``: 1-D integer tensor or array with values in ``[0, C)``. Returns the noisy labels in the same
    container, dtype and device as ``labels``.
    """
    T = _validated(T).clamp(min=0.0)
    C = T.shape[0]
    clean = _labels_as_tensor(labels, C, "labels")
    generator = torch.Generator().manual_seed(_check_seed(seed))
    u = torch.rand(clean.numel(), generator=generator, dtype=torch.float64)
    # Row i of the flattened boundaries holds 2i + cdf(i, j) for j < C-1 and 2i + 2 last: rows occupy
    # disjoint ranges, so 2i + u lands in row i, and the last class absorbs any rounding of the cdf below 1.
    cdf = T.cumsum(dim=1)
    cdf[:, -1] = 2.0
    offsets = 2.0 * torch.arange(C, dtype=torch.float64)
    boundaries = (cdf + offsets[:, None]).reshape(-1)
    noisy = torch.searchsorted(boundaries, offsets[clean] + u, right=True) - clean * C
    return _like(noisy, labels)


def noise_rate(clean_labels: torch.Tensor | np.ndarray, noisy_labels: torch.Tensor | np.ndarray) -> float:
    """Realised noise rate: the fraction of examples whose noisy label differs from the clean one."""
    clean, noisy = _as_cpu_tensor(clean_labels), _as_cpu_tensor(noisy_labels)
    if clean.shape != noisy.shape:
        raise ValueError(
            f"clean and noisy labels differ in shape: {tuple(clean.shape)} vs {tuple(noisy.shape)}"
        )
    if clean.numel() == 0:
        raise ValueError("noise_rate of an empty label set is undefined")
    return (clean != noisy).to(torch.float64).mean().item()


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------


def _validated(T: torch.Tensor | np.ndarray, *, name: str = "T") -> torch.Tensor:
    T = torch.as_tensor(T)
    if T.is_floating_point():
        T = T.detach().to(device="cpu", dtype=torch.float64)
    return check_transition_matrix(T, name=name)


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


def _check_noise_level(N: float) -> float:
    if isinstance(N, bool) or not isinstance(N, numbers.Real) or not 0.0 <= float(N) < 1.0:
        raise ValueError(f"noise level N must be a number in [0, 1), got {N!r}")
    return float(N)


def _check_class(c: int, C: int, what: str) -> int:
    if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 0 <= c < C:
        raise ValueError(f"{what}: class {c!r} is not an integer in [0, {C})")
    return int(c)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def _check_loaded_shape(shape: tuple[int, ...], path: str) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{path}: transition matrix must be square C x C, got shape {shape}")
    if not 2 <= shape[0] <= _MAX_CLASSES_IN_FILE:
        raise ValueError(
            f"{path}: transition matrix must have 2 to {_MAX_CLASSES_IN_FILE} classes, got {shape[0]}"
        )


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


def _superclass_cycles(
    coarse_labels: Sequence[int] | np.ndarray | torch.Tensor, C: int
) -> list[tuple[int, int]]:
    """Pairs ``(f_m, f_{m+1})`` and ``(f_k, f_1)`` of every superclass ``f_1 < ... < f_k`` of the table."""
    table = np.asarray(coarse_labels.cpu() if isinstance(coarse_labels, torch.Tensor) else coarse_labels)
    if table.shape != (C,) or table.dtype.kind not in "iu":
        raise ValueError(
            f"coarse_labels must be the fine -> coarse table with one entry per class ({C} integers), got "
            f"shape {table.shape} and dtype {table.dtype}; per-example coarse labels are not such a table "
            "(pass None for CIFAR-100's own table)"
        )
    pairs = []
    for coarse in np.unique(table):
        members = np.flatnonzero(table == coarse).tolist()  # ascending fine index
        if len(members) > 1:
            pairs += list(zip(members, members[1:] + members[:1]))
    return pairs


def _as_cpu_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def _labels_as_tensor(labels: torch.Tensor | np.ndarray, C: int, name: str) -> torch.Tensor:
    """``labels`` as a 1-D int64 CPU tensor with values in ``[0, C)``, or a clear error."""
    if isinstance(labels, torch.Tensor):
        y = labels.detach().cpu()
    else:
        array = np.asarray(labels)
        if array.dtype.kind not in "iu" and array.size:
            raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
        y = torch.from_numpy(array.astype(np.int64, copy=False))
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if y.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(y.shape)}")
    y = y.to(torch.int64)
    if y.numel() and (y.min() < 0 or y.max() >= C):
        bad = y[(y < 0) | (y >= C)][0].item()
        raise ValueError(f"{name} holds class {bad} outside [0, {C}) for a {C} x {C} transition matrix")
    return y


def _like(values: torch.Tensor, reference: Labels) -> Labels:
    """``values`` in the container, dtype and device of ``reference``."""
    if isinstance(reference, torch.Tensor):
        return values.to(device=reference.device, dtype=reference.dtype)
    reference = np.asarray(reference)
    return values.numpy().astype(reference.dtype, copy=False)
