"""The optimiser and learning-rate schedule of the paper (section 5.1): AdaGrad, or SGD with step decay.

On CPU, AdaGrad calls the kernel of ``torch.optim.Adagrad(fused=True)`` directly (:class:`_Adagrad`): the
same update bit for bit, without the ``torch._dynamo`` import that building a torch.optim optimizer costs
every fresh process. A fresh-process MNIST-5k run (40 epochs, one thread) trains in 1.47 s of CPU instead
of 2.83 s, 2.8 s instead of 4.2 s for the whole process (``python benchmarks/train_speed.py
--compare-adagrad``). Where this torch lacks that private kernel or its signature changed, the public
optimiser is used.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable

import torch
from torch import nn

from pyrobust.experiment.config import TrainConfig

__all__ = ["Optimizer", "learning_rate", "make_optimizer", "make_transition_optimizer"]


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


#: What :func:`make_optimizer` returns: both have ``param_groups[0]["lr"]``, ``zero_grad()`` and ``step()``.
Optimizer = _Adagrad | torch.optim.Optimizer


@functools.cache
def _private_kernel_works() -> bool:
    """Whether this torch has ``torch._fused_adagrad_`` taking :class:`_Adagrad`'s call, tried once on one
    element: ``p = 0, g = 1, lr = 1, eps = 1`` must give ``sum = 1`` and ``p = -1 / (sqrt(1) + 1) = -0.5``."""
    if not hasattr(torch, "_fused_adagrad_"):
        return False
    p, s = torch.zeros(1), torch.zeros(1)
    try:
        torch._fused_adagrad_(
            [p], [torch.ones(1)], [s], [torch.ones(())], lr=1.0, lr_decay=0.0, weight_decay=0.0, eps=1.0,
            maximize=False,
        )
    except (RuntimeError, TypeError, NotImplementedError):
        return False
    return p.item() == -0.5 and s.item() == 1.0


def make_optimizer(config: TrainConfig, model: nn.Module) -> Optimizer:
    """The optimiser of ``config`` (section 5.1) over ``model``'s parameters, learning rate ``config.lr``.

    ``adagrad``: ``p -= lr * g / (sqrt(sum g^2) + adagrad_eps)``, the sum starting at 0, with L2
    ``weight_decay``; on CPU by :class:`_Adagrad` when the private kernel works, else by
    ``torch.optim.Adagrad(fused=True)`` (the same kernel: bit-identical parameters). ``sgd``: heavy-ball
    ``momentum`` with L2 ``weight_decay`` (fused where every parameter is a CPU or CUDA float tensor).

    Raises:
        ValueError: ``_Adagrad`` given parameters of several devices or dtypes, or not floating point.
    """
    params = list(model.parameters())
    # one fused kernel per step instead of several ops per parameter, as deterministic as the loop
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if config.optimizer == "adagrad":
        adagrad = dict(lr=config.lr, eps=config.adagrad_eps, weight_decay=config.weight_decay)
        if all(p.device.type == "cpu" for p in params):
            if _private_kernel_works():
                return _Adagrad(params, **adagrad)
            return torch.optim.Adagrad(params, initial_accumulator_value=0.0, fused=True, **adagrad)
        # elsewhere the per-step Python matters less than whether this torch has the fused kernel there
        return torch.optim.Adagrad(params, initial_accumulator_value=0.0, foreach=True, **adagrad)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, fused=fused
    )


def make_transition_optimizer(config: TrainConfig, loss_fn: nn.Module) -> torch.optim.Optimizer | None:
    """The optimiser of a loss that learns T (T-Revision, VolMinNet): SGD with momentum 0.9 at
    ``config.transition_lr`` over the loss's trainable parameters (VolMinNet's optimiser of T); None for a
    loss without any."""
    params = [p for p in loss_fn.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=config.transition_lr, momentum=0.9) if params else None


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` (counted from 1): ``lr``, times ``lr_gamma`` at each milestone already
    passed (section 5.1's step decay for CIFAR), in the order and grouping of torch's ``MultiStepLR`` (the
    same floats)."""
    lr = config.lr
    for milestone, count in sorted(Counter(config.lr_milestones).items()):
        if milestone < epoch:
            lr *= config.lr_gamma**count
    return lr
