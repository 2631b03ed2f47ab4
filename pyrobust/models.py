"""The networks of the paper's section 5.1, as ``build_model(name, num_classes)``.

=============  =======================================================================  =================
name           architecture                                                             input
=============  =======================================================================  =================
``fc``         784-128-128-C dense, ReLU, dropout 0.5 after each hidden layer           ``N x 784`` float
``embedding``  5000x50 embedding, dropout 0.8, ReLU, flatten, dense to C                ``N x 400`` int64
``lstm``       5000x256 embedding, LSTM 512 (last state), dense 512 + ReLU, dropout      ``N x L`` int64
               0.5, dense to C
``resnet14``   pre-activation ResNet of depth 6n+2 (n = 2, 5, 7): 3x3 conv to 16,       ``N x 3 x 32 x 32``
``resnet32``   three stages of n blocks with 16/32/64 filters (stride 2 entering the
``resnet44``   2nd and 3rd), each block (BN -> ReLU -> 3x3 conv) twice plus the
               shortcut; final BN -> ReLU -> global average pool -> dense to C
=============  =======================================================================  =================

Initialisation follows the paper: weights feeding a ReLU get He et al.'s normal init (std ``sqrt(2 /
fan_in)``), every other weight is uniform in ``[-0.05, 0.05]``; biases start at 0, batch norm at (1, 0).

Dropout layers are :class:`Dropout`: ``nn.Dropout`` with a cheaper mask on CPU.

``bn_head=True`` appends ``BatchNorm1d(C)`` on the logits: the paper stacks it before the unhinged and
sigmoid losses, which otherwise diverge (unbounded) or saturate (section 5.2).
"""

from __future__ import annotations

import torch
from torch import nn

from pyrobust import _ops
from pyrobust.catalog import NETWORKS

__all__ = ["MODELS", "Dropout", "build_model", "resnet_depth_blocks"]

#: Names accepted by :func:`build_model`: the catalogue's networks (``pyrobust.catalog.NETWORKS``).
MODELS = tuple(NETWORKS)

#: Uniform init range of the weights that do not feed a ReLU (paper, section 5.1).
UNIFORM_INIT = 0.05

#: IMDB vocabulary size and review length (paper, section 5.1: top 5,000 words, 400 tokens).
VOCAB_SIZE = 5000
SEQUENCE_LENGTH = 400

#: Dropout of each model when ``dropout=None``: the paper's text. The authors' code disagrees for ``fc``.
DEFAULT_DROPOUT = {
    "fc": 0.5,  # paper text 0.5; the authors' Keras code uses 0.2
    "embedding": 0.8,
    "lstm": 0.5,
}


def _he_init(layer: nn.Linear | nn.Conv2d) -> None:
    """He et al. (2015) normal init for a layer whose output goes through a ReLU: std = sqrt(2 / fan_in)."""
    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _uniform_init(layer: nn.Module) -> None:
    """The paper's init for every weight not followed by a ReLU: U[-0.05, 0.05], biases 0."""
    nn.init.uniform_(layer.weight, -UNIFORM_INIT, UNIFORM_INIT)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (inverted dropout: zero each element with probability ``p``, scale the rest by
    ``1 / (1 - p)``) with a cheaper mask on CPU.

    torch's CPU samplers run a Mersenne Twister one element at a time: the two masks of the MNIST network
    cost more than anything in its training step but the matrix products. On CPU (float32/float64) the mask
    comes from ``torch.ops.pyrobust.dropout_mask`` instead: a counter-based hash of each element's index
    under a key drawn from torch's generator, so ``torch.manual_seed`` still fixes it, and it does not
    depend on the number of threads. Elsewhere (other devices and dtypes, ``inplace``, ``p`` of 0 or 1, or
    without the compiled extension) this is ``nn.Dropout`` itself.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            not self.training
            or self.inplace
            or not 0.0 < self.p < 1.0
            or x.dtype not in (torch.float32, torch.float64)
            or x.device.type != "cpu"
            or not _ops.available()
        ):
            return super().forward(x)
        return x * torch.ops.pyrobust.dropout_mask(x, self.p)


class FullyConnected(nn.Sequential):
    """MNIST network: ``x (N, 784) -> logits (N, C)`` through two ReLU layers of 128 units with dropout."""

    def __init__(self, num_classes: int, *, in_features: int = 784, hidden: int = 128, dropout: float = 0.5):
        fc1, fc2, out = nn.Linear(in_features, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, num_classes)
        _he_init(fc1)
        _he_init(fc2)
        _uniform_init(out)
        super().__init__(fc1, nn.ReLU(), Dropout(dropout), fc2, nn.ReLU(), Dropout(dropout), out)


class WordEmbedding(nn.Module):
    """IMDB bag-of-embeddings network: ids ``(N, 400)`` -> ``(N, 400, 50)`` -> dropout 0.8 -> ReLU -> flatten
    ``(N, 20000)`` -> logits ``(N, C)``.

    The embedding table is uniform in [-0.05, 0.05] (it is a lookup, not a layer with a fan-in; Keras's
    default, which the authors used); the dense output layer is uniform as well.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        vocab_size: int = VOCAB_SIZE,
        sequence_length: int = SEQUENCE_LENGTH,
        embedding_dim: int = 50,
        dropout: float = 0.8,
    ):
        super().__init__()
        self.sequence_length = sequence_length
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(sequence_length * embedding_dim, num_classes)
        _uniform_init(self.embedding)
        _uniform_init(self.out)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.shape[1] != self.sequence_length:
            raise ValueError(
                f"the embedding model takes token ids of shape N x {self.sequence_length}, got {tuple(ids.shape)}"
            )
        h = torch.relu(self.dropout(self.embedding(ids)))
        return self.out(h.flatten(1))


class EmbeddingLSTM(nn.Module):
    """IMDB recurrent network: ids ``(N, L)`` -> embedding 256 -> LSTM 512 (state after the last token)
    -> dense 512 + ReLU -> dropout 0.5 -> logits ``(N, C)``.

    Reviews are left-padded (Keras ``pad_sequences``), so the last state has read the whole review. LSTM
    weights are uniform in [-0.05, 0.05] like every weight not feeding a ReLU, with the forget-gate bias at
    1 (Keras's ``unit_forget_bias``, used by the authors) so that early gradients flow through time.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        vocab_size: int = VOCAB_SIZE,
        embedding_dim: int = 256,
        hidden: int = 512,
        dense: int = 512,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden, batch_first=True)
        self.dense = nn.Linear(hidden, dense)
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(dense, num_classes)
        _uniform_init(self.embedding)
        for name, weight in self.lstm.named_parameters():
            if name.startswith("weight"):
                nn.init.uniform_(weight, -UNIFORM_INIT, UNIFORM_INIT)
            else:
                nn.init.zeros_(weight)
        # PyTorch gate order is (input, forget, cell, output); both bias vectors are summed, so set one.
        nn.init.ones_(self.lstm.bias_ih_l0[hidden : 2 * hidden])
        _he_init(self.dense)
        _uniform_init(self.out)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"the lstm model takes token ids of shape N x L, got {tuple(ids.shape)}")
        _, (h_last, _) = self.lstm(self.embedding(ids))
        return self.out(self.dropout(torch.relu(self.dense(h_last[-1]))))


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
                _he_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        _uniform_init(self.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.blocks(self.stem(x))))
        return self.out(h.mean(dim=(2, 3)))


def build_model(name: str, num_classes: int, *, bn_head: bool = False, dropout: float | None = None) -> nn.Module:
    """Build one of the paper's networks (see the module docstring), freshly initialised from torch's RNG.

    ``name`` in :data:`MODELS`; ``num_classes`` is C, the width of the logits ``(N, C)``; ``bn_head`` appends
    ``BatchNorm1d(C)`` on the logits (for ``unhinged_bn`` / ``sigmoid_bn``); ``dropout`` overrides the
    paper's rate for fc/embedding/lstm (``None``: :data:`DEFAULT_DROPOUT`; ResNets have no dropout).

    Raises:
        ValueError: unknown ``name``, ``num_classes < 2``, a dropout outside ``[0, 1)``, or a dropout given
            for a ResNet.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if name.startswith("resnet"):
        if dropout is not None:
            raise ValueError(f"{name} has no dropout layer; leave dropout=None")
        model: nn.Module = PreActResNet(int(name.removeprefix("resnet")), num_classes)
    else:
        p = DEFAULT_DROPOUT[name] if dropout is None else dropout
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        cls = {"fc": FullyConnected, "embedding": WordEmbedding, "lstm": EmbeddingLSTM}[name]
        model = cls(num_classes, dropout=p)
    if bn_head:
        model = nn.Sequential(model, nn.BatchNorm1d(num_classes))
    return model
