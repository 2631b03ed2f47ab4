"""Image files decoded lazily with PIL, as a standard ``torch.utils.data.Dataset``, and their transforms.

For data sets too large to hold in memory (Clothing1M's 1M images, a large image folder of your own):
:class:`ImageFiles` keeps only the relative paths (one NumPy byte-string buffer, so the ``DataLoader``'s
worker processes share it instead of copying a million Python strings) and the labels, and decodes an
image when it is asked for. :class:`ImageTransform` is the usual ImageNet pipeline (resize the shorter
side, random or centre crop, random horizontal flip, ImageNet normalisation) written with PIL and torch
only; its random draws use torch's generator, which the ``DataLoader`` seeds differently in each worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyrobust.data._common import DataFormatError, DatasetNotAvailable

#: ImageNet's per-channel mean and standard deviation of RGB values in [0, 1] (the statistics the
#: ImageNet-pretrained ResNets expect; torchvision's ``Normalize`` values).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The extensions taken as images in a folder (lower case), as torchvision's ``IMG_EXTENSIONS``.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def open_image(path: str | os.PathLike[str], mode: str | None = "RGB") -> Any:
    """Decode the image file ``path`` with PIL and convert it to ``mode`` (``"RGB"``, ``"L"``; None: keep).

    Returns a ``PIL.Image.Image`` (fully decoded; the file is closed).

    Raises:
        DatasetNotAvailable: the file does not exist (the message names it).
        DataFormatError: it is not a decodable image, or is truncated (the message names it).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, naming it
            return image.convert(mode) if mode is not None else image.copy()
    except FileNotFoundError:
        raise DatasetNotAvailable(f"{path}: image file missing") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as err:
        raise DataFormatError(f"{path}: not a readable image ({type(err).__name__}: {err})") from err


def to_tensor(image: Any) -> torch.Tensor:
    """A PIL image as a float32 ``C x H x W`` tensor in [0, 1] (``C`` = 3 for RGB, 1 for L)."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)


class ImageTransform:
    """PIL image -> normalised float32 ``3 x crop x crop`` tensor: the ImageNet-style pipeline.

    1. resize so that the shorter side is ``resize`` pixels, keeping the aspect ratio (bilinear; the longer
       side is ``int(resize * long / short)``, as torchvision's ``Resize(resize)``); ``resize=None`` skips it;
    2. crop ``crop x crop``: at a uniformly random position if ``random_crop``, else centred (offsets
       ``round((size - crop) / 2)``, as torchvision's ``CenterCrop``);
    3. flip left-right with probability 1/2 if ``flip``;
    4. scale to [0, 1] and normalise each channel: ``(x - mean[c]) / std[c]`` (ImageNet's by default).

    ``ImageTransform.train()`` is steps 1-4 with random crops and flips (Patrini et al. 2017, sec. 5.3:
    "data augmentation ... same as in Section 5.1 for CIFAR-10", i.e. random crops and horizontal flips,
    here at the 224 x 224 input of an ImageNet ResNet-50); ``ImageTransform.eval()`` resizes and crops the
    centre only. Picklable (for ``DataLoader`` workers); random draws come from torch's global generator.

    Raises:
        ValueError: ``crop`` is not positive, ``resize`` is smaller than ``crop``, or ``mean``/``std`` do not
            have 3 entries (``std`` > 0).
    """

    def __init__(
        self,
        resize: int | None = 256,
        crop: int = 224,
        *,
        random_crop: bool = False,
        flip: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if crop < 1 or (resize is not None and resize < crop):
            raise ValueError(f"need 1 <= crop <= resize, got crop={crop}, resize={resize}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 entries (std > 0), got {mean}, {std}")
        self.resize, self.crop, self.random_crop, self.flip = resize, crop, random_crop, flip
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    @classmethod
    def train(cls, resize: int = 256, crop: int = 224) -> ImageTransform:
        """Resize, random ``crop x crop`` crop, random horizontal flip, ImageNet normalisation."""
        return cls(resize, crop, random_crop=True, flip=True)

    @classmethod
    def eval(cls, resize: int = 256, crop: int = 224) -> ImageTransform:
        """Resize, centre ``crop x crop`` crop, ImageNet normalisation (no randomness)."""
        return cls(resize, crop)

    def __repr__(self) -> str:
        return (f"ImageTransform(resize={self.resize}, crop={self.crop}, random_crop={self.random_crop}, "
                f"flip={self.flip}, mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})")

    def __call__(self, image: Any) -> torch.Tensor:
        from PIL import Image

        image = image.convert("RGB")
        if self.resize is not None:
            w, h = image.size
            if w <= h:
                size = (self.resize, int(self.resize * h / w))
            else:
                size = (int(self.resize * w / h), self.resize)
            if size != (w, h):
                image = image.resize(size, Image.Resampling.BILINEAR)
        w, h = image.size
        if w < self.crop or h < self.crop:
            raise ValueError(f"image of {w} x {h} pixels is smaller than the {self.crop} x {self.crop} crop")
        if self.random_crop:
            top = int(torch.randint(0, h - self.crop + 1, ()))
            left = int(torch.randint(0, w - self.crop + 1, ()))
        else:
            top, left = round((h - self.crop) / 2.0), round((w - self.crop) / 2.0)
        image = image.crop((left, top, left + self.crop, top + self.crop))
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(image).sub_(self.mean).div_(self.std)


class ImageFiles(torch.utils.data.Dataset):
    """Labelled image files under ``root``, decoded on access: ``dataset[i] = (transform(image_i), label_i)``.

    Args:
        root: the folder the paths are relative to.
        paths: ``n`` paths relative to ``root`` (``str``; stored as one NumPy byte-string array).
        labels: ``n`` int64 class indices (any integer sequence or array).
        transform: called on the decoded ``PIL.Image`` (RGB); ``None`` gives :func:`to_tensor`'s float32
            ``3 x H x W`` in [0, 1]. Must be picklable to be used with ``DataLoader(num_workers > 0)``.
        source: what the paths come from, named in errors (e.g. the list file).

    ``dataset[i]`` returns ``(image tensor, label)`` with the label a 0-d int64 tensor, so that the default
    collate function stacks a batch into ``B x ...`` and ``B`` int64 tensors.

    Raises (on access):
        DatasetNotAvailable: the image file is missing (the message names it and ``source``).
        DataFormatError: the file is not a readable image (the message names it).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        paths: Sequence[str] | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        transform: Callable[[Any], Any] | None = None,
        *,
        source: str = "",
    ) -> None:
        self.root = str(root)
        self._paths = _byte_strings(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.labels.shape != (len(self._paths),):
            raise ValueError(f"{len(self._paths)} paths but labels of shape {self.labels.shape}")
        self.transform = transform
        self.source = source

    def __len__(self) -> int:
        return len(self._paths)

    def path(self, index: int) -> Path:
        """The absolute path of image ``index``."""
        return Path(self.root) / os.fsdecode(self._paths[index])

    @property
    def paths(self) -> list[str]:
        """The relative paths, as strings (a new list)."""
        return [os.fsdecode(p) for p in self._paths]

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        path = self.path(index)
        try:
            image = open_image(path)
        except DatasetNotAvailable as err:
            where = f" (listed in {self.source})" if self.source else ""
            raise DatasetNotAvailable(f"{err}{where}") from None
        x = self.transform(image) if self.transform is not None else to_tensor(image)
        return x, torch.tensor(self.labels[index], dtype=torch.int64)

    def missing(self) -> list[Path]:
        """The image files that do not exist (one ``stat`` per image: slow on a network file system)."""
        return [p for p in map(self.path, range(len(self))) if not p.is_file()]


def _byte_strings(paths: Sequence[str] | np.ndarray) -> np.ndarray:
    """``paths`` as one fixed-width byte-string array (file-system encoding)."""
    if len(paths) == 0:
        return np.array([], dtype="S1")
    try:
        return np.array(paths, dtype=bytes)  # fast for ASCII paths (str) and for bytes
    except UnicodeEncodeError:
        return np.array([os.fsencode(p) for p in paths], dtype=bytes)


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "ImageFiles",
    "ImageTransform",
    "open_image",
    "to_tensor",
]
