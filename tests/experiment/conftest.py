"""Fixtures of the experiment's tests: a small real data set and a quick MNIST-5k config."""

import pytest
import torch

from pyrobust.data import Dataset, load
from pyrobust.experiment.config import TrainConfig


@pytest.fixture(scope="session")
def small():
    """1,200 training and 400 test digits of MNIST-5k (real data, fast to train)."""
    full = load("mnist5k")
    g = torch.Generator().manual_seed(0)
    tr_idx = torch.randperm(len(full.y_train), generator=g)[:1200]
    te_idx = torch.randperm(len(full.y_test), generator=g)[:400]
    return Dataset(name="mnist5k", x_train=full.x_train[tr_idx], y_train=full.y_train[tr_idx],
                   x_test=full.x_test[te_idx], y_test=full.y_test[te_idx], num_classes=10)


def _cfg(method="cross_entropy", **kw):
    base = dict(noise="asymmetric", N=0.6, seed=1, epochs=3, threads=1, device="cpu")
    return TrainConfig.paper("mnist5k", method, **{**base, **kw})


@pytest.fixture
def cfg():
    """``cfg(method="cross_entropy", **overrides)``: MNIST-5k, asymmetric N=0.6, seed 1, 3 epochs, 1 CPU thread."""
    return _cfg
