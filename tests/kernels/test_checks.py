"""Every loss of pyrobust raises what F.cross_entropy raises for the same mistake in its inputs.

The losses: the forward and backward corrections as functions and modules, on the compiled op path (the
CPU kernel) and on the reference path (pyrobust._reference, also reached through the public functions when
T requires grad or the backward loss is clipped), the compiled ops themselves, and every baseline as a
function and as a module. The inputs are checked in one place, pyrobust._checks (and, for the compiled ops,
kernels/include/pyrobust/checks.h and the CPU kernel), so for a mistake every Python-level loss also gives
the same message.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

import pyrobust
from pyrobust import _checks, _reference, losses
from pyrobust.losses import baselines

B, C = 4, 5


def _T() -> torch.Tensor:
    T = torch.full((C, C), 0.1 / (C - 1), dtype=torch.float64)
    T.fill_diagonal_(0.9)
    return T


def _log_T_t() -> torch.Tensor:
    return _T().log().t().contiguous().float()


def _T_inv() -> torch.Tensor:
    return torch.linalg.inv(_T()).float().contiguous()


# name -> make(ignore_index) -> loss(logits, target); `op` marks the compiled ops called directly (their C++
# messages differ from the Python checks' for dtypes and shapes; the types are the same).
LOSSES = {
    "forward": lambda ii: lambda h, y: pyrobust.forward_corrected_cross_entropy(h, y, _T(), ignore_index=ii),
    "backward": lambda ii: lambda h, y: pyrobust.backward_corrected_cross_entropy(h, y, _T(), ignore_index=ii),
    "ForwardCorrectedLoss": lambda ii: pyrobust.ForwardCorrectedLoss(_T(), ignore_index=ii),
    "BackwardCorrectedLoss": lambda ii: pyrobust.BackwardCorrectedLoss(_T(), ignore_index=ii),
    "backward T_inv": lambda ii: lambda h, y: pyrobust.backward_corrected_cross_entropy(
        h, y, T_inv=_T_inv().double(), ignore_index=ii
    ),
    # the reference path through the public functions: T with a gradient, a clipped backward loss
    "forward (reference, T.requires_grad)": lambda ii: lambda h, y: pyrobust.forward_corrected_cross_entropy(
        h, y, _T().requires_grad_(), ignore_index=ii
    ),
    "backward (reference, clip)": lambda ii: lambda h, y: pyrobust.backward_corrected_cross_entropy(
        h, y, _T(), ignore_index=ii, clip=1e-7
    ),
    "_reference.forward_corrected_ce": lambda ii: lambda h, y: _reference.forward_corrected_ce(h, y, _log_T_t(), ii),
    "_reference.backward_corrected_ce": lambda ii: lambda h, y: _reference.backward_corrected_ce(h, y, _T_inv(), ii),
    "op forward_corrected_ce": lambda ii: lambda h, y: torch.ops.pyrobust.forward_corrected_ce(h, y, _log_T_t(), ii),
    "op backward_corrected_ce": lambda ii: lambda h, y: torch.ops.pyrobust.backward_corrected_ce(h, y, _T_inv(), ii),
    **{
        f"baselines.{name}": (lambda fn: lambda ii: lambda h, y: fn(h, y, "mean", ignore_index=ii))(getattr(baselines, name))
        for name in ("unhinged", "sigmoid", "savage", "bootstrap_soft", "bootstrap_hard", "gce", "sce")
    },
    **{
        cls: (lambda c: lambda ii: c(ignore_index=ii))(getattr(losses, cls))
        for cls in ("UnhingedLoss", "SigmoidLoss", "SavageLoss", "BootstrapSoftLoss", "BootstrapHardLoss", "GCELoss", "SCELoss")
    },
}


def _target(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


# mistake -> (target, ignore_index)
MISTAKES = {
    "target float32": (_target(0, 1, 2, 3).float(), -100),
    "target int32": (_target(0, 1, 2, 3).int(), -100),
    "target of B - 1 rows": (_target(0, 1, 2), -100),
    "target of B + 1 rows": (_target(0, 1, 2, 3, 4), -100),
    "class C": (_target(0, 1, C, 3), -100),
    "class C + 7": (_target(0, C + 7, 2, 3), -100),
    "class -1, ignore_index -100": (_target(0, 1, -1, 3), -100),
    "class -100, ignore_index 3": (_target(0, -100, 2, 3), 3),
}


def _logits() -> torch.Tensor:
    return torch.randn(B, C, generator=torch.Generator().manual_seed(0)).requires_grad_()


def _raised(call) -> BaseException:
    with pytest.raises(Exception) as info:
        call()
    return info.value


def _message(err: BaseException) -> str:
    return re.sub(r"^pyrobust: ", "", str(err).splitlines()[0])


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_every_loss_raises_what_cross_entropy_raises(mistake):
    target, ignore_index = MISTAKES[mistake]
    expected = type(_raised(lambda: F.cross_entropy(_logits(), target, ignore_index=ignore_index)))
    messages = {}
    for name, make in LOSSES.items():
        err = _raised(lambda: make(ignore_index)(_logits(), target).sum().backward())
        assert isinstance(err, expected), f"{name}: {type(err).__name__} ({err}), F.cross_entropy: {expected.__name__}"
        if not name.startswith("op ") or mistake.startswith("class"):
            messages[name] = _message(err)
    assert len(set(messages.values())) == 1, messages  # one check, one message, whichever loss


def test_the_exception_types_are_those_of_cross_entropy_on_cpu_in_torch_2_13():
    """The table of pyrobust._checks, pinned: a change in F.cross_entropy shows up here first."""
    table = {mistake: type(_raised(lambda: F.cross_entropy(_logits(), t, ignore_index=ii))) for mistake, (t, ii) in MISTAKES.items()}
    assert table == {
        "target float32": RuntimeError,
        "target int32": RuntimeError,
        "target of B - 1 rows": ValueError,
        "target of B + 1 rows": ValueError,
        "class C": IndexError,
        "class C + 7": IndexError,
        "class -1, ignore_index -100": IndexError,
        "class -100, ignore_index 3": IndexError,
    }


def test_a_wrong_dtype_is_a_type_error_and_a_runtime_error():
    err = _raised(lambda: pyrobust.forward_corrected_cross_entropy(_logits(), _target(0, 1, 2, 3).int(), _T()))
    assert isinstance(err, _checks.DtypeError) and isinstance(err, TypeError) and isinstance(err, RuntimeError)
    assert str(err) == "target must hold int64 (or uint8) class indices, got torch.int32: pass target.long()"
    err = _raised(lambda: baselines.gce(_logits().long(), _target(0, 1, 2, 3)))
    assert isinstance(err, _checks.DtypeError) and str(err) == "logits must be floating point, got torch.int64"


def test_check_targets_names_the_first_bad_row():
    with pytest.raises(IndexError, match=r"^target\[2\] = 7 is out of range for 5 classes \(ignore_index = -100\)$"):
        _checks.check_targets(_target(0, -100, 7, 9), 5, -100)
    _checks.check_targets(_target(0, -100, 4), 5, -100)  # no error
    _checks.check_targets(_target(), 5, -100)  # an empty batch neither


def test_check_logits_and_target_returns_C_and_checks_the_rest():
    assert _checks.check_logits_and_target(_logits(), _target(0, 1, 2, 3), "sum") == C
    cases = [
        ((_logits(), [0, 1, 2, 3]), TypeError, "logits and target must be tensors, got Tensor and list"),
        ((_logits()[0], _target(0)), ValueError, r"logits must be 2-D \(B, C\), got shape \(5,\)"),
        ((torch.zeros(4, 0), _target(0, 1, 2, 3)), ValueError, "logits have 0 classes"),
        ((_logits(), _target(0, 1, 2, 3)[:, None]), ValueError, r"target must have shape \(4,\) to match logits"),
        ((_logits(), _target(0, 1, 2, 3).to("meta")), ValueError, "logits are on cpu but target is on meta"),
    ]
    for args, error, match in cases:
        with pytest.raises(error, match=match):
            _checks.check_logits_and_target(*args)
    with pytest.raises(ValueError, match=r"reduction must be one of \('none', 'mean', 'sum'\), got 'avg'"):
        _checks.check_logits_and_target(_logits(), _target(0, 1, 2, 3), "avg")


@pytest.mark.parametrize("ignore_index", [-100, 3])
def test_every_loss_of_the_sweep_runs_on_valid_inputs(ignore_index):
    """So that the errors above come from the mistakes, not from the way each loss is called."""
    for name, make in LOSSES.items():
        logits = _logits()
        make(ignore_index)(logits, _target(0, ignore_index, 2, 1)).sum().backward()
        assert logits.grad is not None and torch.isfinite(logits.grad).all(), name
