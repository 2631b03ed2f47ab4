"""Data augmentation for CIFAR on the device that holds the batch: random crops of the padded image + flips."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random ``H x W`` crops of the zero-padded images, each flipped horizontally with probability 1/2.

    ``x`` is a batch ``B x C x H x W``. Image ``b`` is padded with ``padding`` zeros on every side, then
    ``out[b, c, i, j] = padded[b, c, dy_b + i, dx_b + j']`` with offsets ``dy_b, dx_b`` uniform in
    ``{0, ..., 2 * padding}`` and ``j' = W - 1 - j`` if image ``b`` is flipped, else ``j``. One gather for
    the whole batch, on ``x``'s device, with no per-image Python work. The random draws come from
    ``generator`` (on its own device) when given, so a seeded generator reproduces the same batch; else
    from the global generator of ``x``'s device. Returns a new contiguous tensor of ``x``'s shape and dtype.

    Raises:
        ValueError: ``x`` is not a 4-D batch, or ``padding`` is negative.
    """
    if x.dim() != 4:
        raise ValueError(f"random_crop_flip expects a B x C x H x W batch, got shape {tuple(x.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    B, C, H, W = x.shape
    draw_device = generator.device if generator is not None else x.device
    offsets = torch.randint(0, 2 * padding + 1, (2, B), generator=generator, device=draw_device).to(x.device)
    flip = (torch.rand(B, generator=generator, device=draw_device) < 0.5).to(x.device)

    padded_width = W + 2 * padding
    rows = offsets[0, :, None] + torch.arange(H, device=x.device)  # B x H
    cols = torch.arange(W, device=x.device).expand(B, W)
    cols = offsets[1, :, None] + torch.where(flip[:, None], cols.flip(1), cols)  # B x W
    index = (rows[:, :, None] * padded_width + cols[:, None, :]).view(B, 1, H * W).expand(B, C, H * W)
    padded = F.pad(x, (padding,) * 4).flatten(2)  # B x C x (H + 2p)(W + 2p)
    return padded.gather(2, index).view(B, C, H, W)


__all__ = ["random_crop_flip"]
