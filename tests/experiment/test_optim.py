"""pyrobust.experiment.optim: AdaGrad with Duchi's delta (private fused kernel or the public optimiser,
bit for bit the same) and the MultiStepLR schedule."""

import pytest
import torch

from pyrobust.experiment import optim
from pyrobust.models import build_model

PATHS = [
    pytest.param(True, id="private-kernel",
                 marks=pytest.mark.skipif(not optim._private_kernel_works(), reason="no torch._fused_adagrad_")),
    pytest.param(False, id="torch.optim"),
]


@pytest.fixture(params=PATHS)
def private(request, monkeypatch):
    """Run the test with make_optimizer's private-kernel path (True) or its torch.optim fallback (False)."""
    monkeypatch.setattr(optim, "_private_kernel_works", lambda: request.param)
    return request.param


def test_adagrad_matches_duchi_delta_semantics(cfg, private):
    # one step from a zero accumulator: p - lr * g / (sqrt(g^2) + delta), delta added after the sqrt
    config = cfg(lr=0.5, adagrad_eps=0.1)
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0]]))
    opt = optim.make_optimizer(config, layer)
    assert isinstance(opt, optim._Adagrad) is private
    g = torch.tensor([[0.3, -4.0]])
    layer.weight.grad = g.clone()
    opt.step()
    expected = torch.tensor([[1.0, -2.0]]) - 0.5 * g / (g.abs() + 0.1)
    torch.testing.assert_close(layer.weight.detach(), expected)


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_adagrad_is_torch_fused_adagrad_bit_for_bit(cfg, private, weight_decay):
    torch.manual_seed(0)
    ours, ref = build_model("fc", 10, bn_head=True), build_model("fc", 10, bn_head=True)
    ref.load_state_dict(ours.state_dict())
    opt = optim.make_optimizer(cfg(weight_decay=weight_decay), ours)
    ref_opt = torch.optim.Adagrad(ref.parameters(), lr=0.01, eps=1e-6, initial_accumulator_value=0.0,
                                  weight_decay=weight_decay, fused=True)
    for step in range(6):
        x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
        for model, optimizer in ((ours, opt), (ref, ref_opt)):
            torch.manual_seed(step)  # the same dropout masks
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            if step == 2:  # a parameter without a gradient is left alone
                model[0][0].bias.grad = None
            if step == 4:
                optimizer.param_groups[0]["lr"] = 0.003
            optimizer.step()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), name
    sums = opt.sums if private else [opt.state[p]["sum"] for p in ours.parameters()]
    for s, q in zip(sums, ref.parameters()):
        assert torch.equal(s, ref_opt.state[q]["sum"])


def test_private_kernel_probe_is_false_without_the_kernel(monkeypatch):
    optim._private_kernel_works.cache_clear()
    monkeypatch.delattr(torch, "_fused_adagrad_", raising=False)
    try:
        assert optim._private_kernel_works() is False
    finally:
        optim._private_kernel_works.cache_clear()


def test_sgd_and_non_cpu_adagrad_use_torch_optim(cfg):
    layer = torch.nn.Linear(2, 1)
    sgd = optim.make_optimizer(cfg(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4), layer)
    assert isinstance(sgd, torch.optim.SGD)
    assert (sgd.defaults["momentum"], sgd.defaults["weight_decay"], sgd.defaults["fused"]) == (0.9, 1e-4, True)
    meta = optim.make_optimizer(cfg(), torch.nn.Linear(2, 1, device="meta"))
    assert isinstance(meta, torch.optim.Adagrad) and meta.defaults["initial_accumulator_value"] == 0.0


def test_learning_rate_schedule_is_multistep_lr(cfg):
    config = cfg(optimizer="sgd", lr=0.1, lr_milestones=(2, 5, 5), lr_gamma=0.1, epochs=8)
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(sgd, list(config.lr_milestones), gamma=config.lr_gamma)
    for epoch in range(1, config.epochs + 1):
        assert optim.learning_rate(config, epoch) == sgd.param_groups[0]["lr"], epoch
        sgd.step()
        scheduler.step()
