"""The ImageNet ResNet-50 of section 5.3 (Clothing1M), with torchvision's layout and parameter names, and
the loading of its ImageNet weights from a local file (:func:`load_resnet50_weights`; nothing downloads).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from pyrobust.models.init import uniform_init

__all__ = ["Bottleneck", "ResNet50", "load_resnet50_weights", "resnet50"]


class Bottleneck(nn.Module):
    """Bottleneck residual block of the ImageNet ResNets (He et al., 2016a): ``relu(x' + F(x))`` with
    ``F = BN . conv1x1(4w) . ReLU . BN . conv3x3(w, stride) . ReLU . BN . conv1x1(w)``.

    The stride sits on the 3x3 convolution ("ResNet v1.5", torchvision's and the usual PyTorch weights);
    the original Caffe ResNet-50 strides the first 1x1 convolution. ``x'`` is ``x``, or
    ``downsample(x)`` (1x1 strided convolution + BN) where the shape changes. Attribute names are
    torchvision's (``conv1``, ``bn1``, ..., ``downsample.0``, ``downsample.1``), so its weights load.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                          nn.BatchNorm2d(out_channels))
            if stride != 1 or in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ImageNet ResNet-50 (He et al., 2016a; the network of the paper's section 5.3): ``x (N, 3, H, W)``
    float32, ImageNet-normalised (224 x 224 in the paper's protocol; any ``H, W >= 32``) -> logits
    ``(N, C)`` float32.

    conv7x7(3 -> 64, stride 2) -> BN -> ReLU -> max pool 3x3 stride 2, then four stages of 3, 4, 6, 3
    :class:`Bottleneck` blocks of widths 64, 128, 256, 512 (outputs 256 ... 2048 channels; stride 2
    entering stages 2-4), global average pool, dense 2048 -> C (``fc``). Module and parameter names are
    torchvision's ``resnet50`` (``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``fc``): the state dicts of
    the two networks have the same keys and shapes (a test checks them), 25,557,032 parameters for C = 1000.

    Initialisation (used when no weights are loaded): He normal with fan-out for the convolutions (as
    torchvision), BN at (1, 0); the head ``fc`` as the paper's output layers: uniform in [-0.05, 0.05],
    bias 0 (section 5.1), which is also what a new 14-class head on pretrained weights starts from.

    Raises:
        ValueError: (``forward``) an input not of shape ``N x 3 x H x W``.
    """

    stages = (3, 4, 6, 3)
    widths = (64, 128, 256, 512)

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for i, (blocks, width) in enumerate(zip(self.stages, self.widths), start=1):
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck(in_channels, width, stride=2 if i > 1 and b == 0 else 1))
                in_channels = width * Bottleneck.expansion
            setattr(self, f"layer{i}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        uniform_init(self.fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"resnet50 takes images of shape N x 3 x H x W, got {tuple(x.shape)}")
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        return self.fc(torch.flatten(self.avgpool(h), 1))


def resnet50(num_classes: int = 1000) -> ResNet50:
    """A freshly initialised :class:`ResNet50` with a ``num_classes``-way head (no weights are fetched:
    load a local file with :func:`load_resnet50_weights`).

    Raises:
        ValueError: ``num_classes < 2``.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return ResNet50(num_classes)


def load_resnet50_weights(
    model: ResNet50, path: str | os.PathLike[str], *, head: str = "replace", what: str = "weights file"
) -> ResNet50:
    """Load a ResNet-50 state dict from the local file ``path`` into ``model``, in place; return ``model``.

    The file is read with ``torch.load(path, weights_only=True, map_location="cpu")``: no code in it runs
    (a pickle of anything but tensors and plain containers is refused). It must hold a plain state dict,
    ``{name: tensor}``, with :class:`ResNet50`'s (= torchvision's ``resnet50``) names and shapes, e.g.
    torchvision's ImageNet weights ``resnet50-0676ba61.pth`` (IMAGENET1K_V1) or ``resnet50-11ad3fa6.pth``
    (IMAGENET1K_V2), downloaded once by the user; nothing is downloaded here. ``num_batches_tracked``
    entries may be absent (files saved by old torch versions) and are then set to 0.

    Args:
        model: the network to fill (any ``num_classes``).
        path: the ``.pth`` file.
        head: ``"replace"``: ignore the file's ``fc.weight``/``fc.bias`` (ImageNet's 1000 classes) and keep
            ``model``'s freshly initialised head (the paper's fine-tuning, section 5.3); ``"load"``: load the
            head too (a checkpoint of the same ``num_classes``, e.g. Table 3's #8 starting from #6).
        what: how errors name the file (e.g. ``"imagenet_weights (config key)"``).

    Raises:
        FileNotFoundError: no file at ``path`` (the message names ``what`` and the path).
        ValueError: the file cannot be read as a weights-only torch file, is not a state dict of tensors,
            or its keys or shapes differ from ResNet-50's (the message names the file and the first
            differences); ``head`` is neither ``"replace"`` nor ``"load"``.
    """
    import pickle
    import zipfile

    if head not in ("replace", "load"):
        raise ValueError(f"head must be 'replace' or 'load', got {head!r}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{what}: {path} does not exist (a local ResNet-50 state dict, e.g. torchvision's "
            f"resnet50-0676ba61.pth; nothing is downloaded at training time)"
        )
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{what}: {path}: not a weights-only torch file ({type(err).__name__}: {first})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ValueError(f"{what}: {path}: expected a state dict {{name: tensor}}, got {type(state).__name__}")
    expected = model.state_dict()
    skip = {"fc.weight", "fc.bias"} if head == "replace" else set()
    state = {k: v for k, v in state.items() if k not in skip}
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    missing = [k for k in expected if k not in state and k not in skip]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        problems = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if items:
                problems.append(f"{len(items)} {label}: {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}")
        raise ValueError(f"{what}: {path}: not a ResNet-50 state dict of this network ({'; '.join(problems)})")
    if any(v.is_floating_point() != expected[k].is_floating_point() for k, v in state.items()):
        raise ValueError(f"{what}: {path}: tensors of the wrong kind (floating point expected for weights)")
    model.load_state_dict(state, strict=head == "load")
    return model
