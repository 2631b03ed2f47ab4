"""The plug-in's code: imported only when its loss or estimator is used."""

import torch
from torch import nn


class MAELoss(nn.Module):
    """``sum_j |softmax(h)_j - e_y_j| = 2 - 2 softmax(h)_y`` per example, reduced as ``nn.CrossEntropyLoss``."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = 2 - 2 * torch.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        return {"mean": loss.mean, "sum": loss.sum}.get(self.reduction, lambda: loss)()


def column_mean(probs: torch.Tensor, labels: torch.Tensor, **options) -> torch.Tensor:
    """Row i of T_hat: the mean of ``probs`` over the examples labelled i, row-normalised."""
    C = probs.shape[1]
    sums = torch.zeros(C, C, dtype=torch.float64).index_add_(0, labels.cpu(), probs.cpu().double())
    return sums / sums.sum(dim=1, keepdim=True)
