"""T-Revision and VolMinNet losses: the forward correction with a learnable T, checked against the formula
-log (softmax(x) T)_y (Patrini et al. 2017, eq. 8) plus VolMinNet's volume penalty (Li et al. 2021)."""

import math

import pytest
import torch

from pyrobust.losses.learned_transition import TRevisionLoss, VolMinNetLoss, volminnet_initial_T


def formula(logits, target, T):
    noisy = torch.softmax(logits.double(), dim=1) @ T.double()
    return -noisy.gather(1, target[:, None]).squeeze(1).log()


def test_volminnet_starts_near_the_identity():
    T = volminnet_initial_T(10)
    off = 1 / (1 + math.exp(2.0))
    assert T[0, 0].item() == pytest.approx(1 / (1 + 9 * off)) and T[0, 1].item() == pytest.approx(off / (1 + 9 * off))
    torch.testing.assert_close(T.sum(1), torch.ones(10, dtype=torch.float64))
    with pytest.raises(ValueError, match="num_classes"):
        volminnet_initial_T(1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_volminnet_is_the_forward_loss_plus_the_volume_penalty(reduction):
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(16, 5, generator=g), torch.randint(0, 5, (16,), generator=g)
    loss = VolMinNetLoss(5, reduction=reduction, volume_weight=0.1)
    T = loss.T.detach()
    penalty = 0.1 * torch.linalg.slogdet(T).logabsdet
    per_example = formula(logits, target, T)
    expected = {"mean": per_example.mean() + penalty, "sum": per_example.sum() + penalty,
                "none": per_example + penalty / 16}[reduction]
    torch.testing.assert_close(loss(logits, target).double(), expected, atol=1e-5, rtol=1e-5)


def test_volminnet_gradient_reaches_T_and_the_penalty_shrinks_it():
    loss = VolMinNetLoss(4, volume_weight=1.0)
    logits, target = torch.zeros(8, 4), torch.arange(8) % 4  # uniform predictions: the CE part is flat in T
    loss(logits, target).backward()
    before = torch.linalg.det(loss.T.detach())
    with torch.no_grad():
        loss.T_logits -= 0.5 * loss.T_logits.grad
    assert torch.linalg.det(loss.T.detach()) < before  # min-volume: gradient descent lowers log det T


def test_volminnet_refuses_a_negative_weight_and_shows_it():
    with pytest.raises(ValueError, match="volume_weight"):
        VolMinNetLoss(3, volume_weight=-1)
    assert "volume_weight=0.0001" in repr(VolMinNetLoss(3))


def test_t_revision_starts_at_T_hat_and_learns_it():
    T_hat = torch.tensor([[0.7, 0.3, 0.0], [0.1, 0.8, 0.1], [0.0, 0.4, 0.6]], dtype=torch.float64)
    loss = TRevisionLoss(T_hat)
    torch.testing.assert_close(loss.T.detach().double(), T_hat, atol=1e-6, rtol=0)
    g = torch.Generator().manual_seed(1)
    logits, target = torch.randn(10, 3, generator=g), torch.randint(0, 3, (10,), generator=g)
    value = loss(logits, target)
    torch.testing.assert_close(value.double(), formula(logits, target, T_hat).mean(), atol=1e-5, rtol=1e-5)
    value.backward()
    assert loss.T_logits.grad is not None and loss.T_logits.grad.abs().sum() > 0
    assert "T_logits" in dict(loss.named_parameters()) and loss.learnable


def test_bad_arguments_are_clear_errors_and_unrevisable_zeros_are_warned():
    with pytest.raises(TypeError, match="num_classes must be an integer"):
        VolMinNetLoss(2.5)
    with pytest.raises(ValueError, match="finite"):
        VolMinNetLoss(3, volume_weight=float("nan"))
    with pytest.warns(UserWarning, match="6 entries exactly 0"):
        TRevisionLoss(torch.eye(3, dtype=torch.float64))
