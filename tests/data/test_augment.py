"""random_crop_flip: every output is one of the padded crops (flipped or not), all of them occur, seeded."""

from __future__ import annotations

import pytest
import torch

from pyrobust.data import random_crop_flip


def all_crops(image: torch.Tensor, padding: int) -> torch.Tensor:
    """Every (dy, dx, flip) crop of one C x H x W image, in a plain loop: the reference."""
    C, H, W = image.shape
    padded = torch.zeros(C, H + 2 * padding, W + 2 * padding, dtype=image.dtype)
    padded[:, padding:padding + H, padding:padding + W] = image
    crops = [padded[:, dy:dy + H, dx:dx + W] for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)]
    return torch.stack(crops + [crop.flip(-1) for crop in crops])  # index: flip * n^2 + dy * n + dx


def which_crop(out: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """For each output image, the index of the candidate crop it equals (asserting there is exactly one)."""
    matches = (out[:, None] == candidates[None]).flatten(2).all(-1)  # B x K
    assert (matches.sum(1) == 1).all(), "an output is not exactly one padded crop"
    return matches.int().argmax(1)


@pytest.mark.parametrize("shape, padding", [((5, 3, 32, 32), 4), ((7, 2, 6, 10), 2), ((3, 1, 5, 5), 0)])
def test_each_output_is_a_padded_crop(shape, padding):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)) + 3  # nonzero, unlike the padding
    out = random_crop_flip(x, padding, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype and out.is_contiguous()
    for b in range(len(x)):
        which_crop(out[b:b + 1], all_crops(x[b], padding))


def test_every_offset_and_flip_occurs_about_uniformly():
    padding, n = 2, 2000
    image = torch.arange(1, 2 * 6 * 8 + 1, dtype=torch.float64).view(2, 6, 8)  # all pixels distinct
    out = random_crop_flip(image.expand(n, -1, -1, -1), padding, generator=torch.Generator().manual_seed(2))
    counts = torch.bincount(which_crop(out, all_crops(image, padding)), minlength=50)
    assert counts.numel() == 50 and (counts > 0).all()  # 5 x 5 offsets x 2 flips
    assert counts.max() < 2.2 * n / 50  # expected 40 each; a binomial count above 88 is ~1e-10 likely
    flipped = counts[25:].sum().item()
    assert abs(flipped - n / 2) < 5 * (n / 4) ** 0.5


def test_seeded_generator_reproduces_the_batch():
    x = torch.randn(64, 3, 32, 32)
    first = random_crop_flip(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, random_crop_flip(x, generator=torch.Generator().manual_seed(7)))
    assert not torch.equal(first, random_crop_flip(x, generator=torch.Generator().manual_seed(8)))
    torch.manual_seed(3)
    global_draw = random_crop_flip(x)
    torch.manual_seed(3)
    assert torch.equal(global_draw, random_crop_flip(x))


def test_integer_images_and_bad_input():
    x = torch.randint(1, 255, (4, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(x, 1, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8
    for b in range(4):
        which_crop(out[b:b + 1], all_crops(x[b], 1))
    with pytest.raises(ValueError, match="B x C x H x W"):
        random_crop_flip(x[0])
    with pytest.raises(ValueError, match="padding must be >= 0"):
        random_crop_flip(x, -1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.cuda
def test_on_cuda_matches_cpu_given_the_same_generator():
    x = torch.randn(16, 3, 32, 32)
    expected = random_crop_flip(x, generator=torch.Generator().manual_seed(5))
    out = random_crop_flip(x.cuda(), generator=torch.Generator().manual_seed(5))  # CPU draws, CUDA gather
    assert out.device.type == "cuda" and torch.equal(out.cpu(), expected)
    on_device = random_crop_flip(x.cuda(), generator=torch.Generator("cuda").manual_seed(5))
    for b in range(len(x)):
        which_crop(on_device[b:b + 1].cpu(), all_crops(x[b], 4))
