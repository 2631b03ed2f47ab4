"""The CIFAR networks of section 5.1: pre-activation ResNets of depth ``6n + 2`` (``resnet14/32/44``)."""

from __future__ import annotations

import torch
from torch import nn

from pyrobust.models.init import he_init, uniform_init

__all__ = ["PreActBlock", "PreActResNet", "resnet_depth_blocks"]


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al., 2016b): ``x + F(x)`` with
    ``F = conv3x3 . ReLU . BN . conv3x3(stride) . ReLU . BN``.

    Where the block changes the shape (stride 2, more filters) the shortcut is a 1x1 strided convolution of
    the pre-activated input, as in the pre-activation paper.
    """

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.shortcut = (
            nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)
            if stride != 1 or in_channels != channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(a)
        h = self.conv1(a)
        h = self.conv2(torch.relu(self.bn2(h)))
        return h + shortcut


def resnet_depth_blocks(depth: int) -> int:
    """Blocks per stage ``n`` of a CIFAR ResNet of depth ``6n + 2`` (first conv + 6n convs + dense).

    Raises:
        ValueError: ``depth`` is not of the form ``6n + 2`` with ``n >= 1``.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n + 2 with n >= 1 (8, 14, 20, 32, 44, ...), got {depth}")
    return (depth - 2) // 6


class PreActResNet(nn.Module):
    """CIFAR pre-activation ResNet: ``x (N, 3, 32, 32) -> logits (N, C)``.

    conv3x3(3 -> 16), stages of ``n`` blocks with 16, 32, 64 filters (32x32, 16x16, 8x8), then
    BN -> ReLU -> global average pool -> dense(64 -> C). Convolutions feed (through BN) a ReLU: He init.

    Raises:
        ValueError: as :func:`resnet_depth_blocks`.
    """

    def __init__(self, depth: int, num_classes: int, *, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        n = resnet_depth_blocks(depth)
        self.depth = depth
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        in_channels = widths[0]
        for stage, channels in enumerate(widths):
            for i in range(n):
                blocks.append(PreActBlock(in_channels, channels, stride=2 if stage > 0 and i == 0 else 1))
                in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_channels)
        self.out = nn.Linear(in_channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                he_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        uniform_init(self.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.blocks(self.stem(x))))
        return self.out(h.mean(dim=(2, 3)))
