"""The baselines' class-index targets checked on the way in, and their per-example losses reduced on the way
out, as ``F.cross_entropy`` does."""

from __future__ import annotations

import torch

from pyrobust._checks import check_logits_and_target, check_targets


def _checked_target(
    logits: torch.Tensor, target: torch.Tensor, reduction: str, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the inputs (``pyrobust._checks``); return ``target`` with ignored entries set to 0 (safe to
    gather) and the mask of the examples that count."""
    check_targets(target, check_logits_and_target(logits, target, reduction), ignore_index)
    valid = target != ignore_index
    return torch.where(valid, target.long(), 0), valid


def _reduce(per_example: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce like ``F.cross_entropy``: ignored examples count 0; "mean" divides by the number kept."""
    per_example = torch.where(valid, per_example, 0.0)
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    return per_example.sum() / valid.sum()
