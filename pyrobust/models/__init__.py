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
``resnet50``   the ImageNet bottleneck ResNet-50 of He et al. (2016) (section 5.3,       ``N x 3 x H x W``
               Clothing1M): :func:`resnet50`, torchvision's layout and parameter names,  (224 x 224)
               so torchvision's ImageNet weights load (:func:`load_resnet50_weights`)
=============  =======================================================================  =================

Initialisation follows the paper: weights feeding a ReLU get He et al.'s normal init (std ``sqrt(2 /
fan_in)``), every other weight is uniform in ``[-0.05, 0.05]``; biases start at 0, batch norm at (1, 0).

Dropout layers are :class:`Dropout`: ``nn.Dropout`` with a cheaper mask on CPU.

``bn_head=True`` appends ``BatchNorm1d(C)`` on the logits: the paper stacks it before the unhinged and
sigmoid losses, which otherwise diverge (unbounded) or saturate (section 5.2).

One job a module: :mod:`~pyrobust.models.init` (the paper's initialisation), :mod:`~.dropout`,
:mod:`~.fc` (MNIST), :mod:`~.text` (IMDB: ``embedding``, ``lstm``), :mod:`~.cifar_resnet` (CIFAR), and
:mod:`~.imagenet_resnet` (ResNet-50 and its ImageNet weights); this one builds them by name.
"""

from __future__ import annotations

from torch import nn

from pyrobust.catalog import NETWORKS
from pyrobust.models.cifar_resnet import PreActBlock as PreActBlock
from pyrobust.models.cifar_resnet import PreActResNet, resnet_depth_blocks
from pyrobust.models.dropout import Dropout
from pyrobust.models.fc import FullyConnected
from pyrobust.models.imagenet_resnet import Bottleneck, ResNet50, load_resnet50_weights, resnet50
from pyrobust.models.init import UNIFORM_INIT as UNIFORM_INIT
from pyrobust.models.text import SEQUENCE_LENGTH as SEQUENCE_LENGTH
from pyrobust.models.text import VOCAB_SIZE as VOCAB_SIZE
from pyrobust.models.text import EmbeddingLSTM, WordEmbedding

__all__ = [
    "IMAGENET_MODELS",
    "MODELS",
    "Bottleneck",
    "Dropout",
    "ResNet50",
    "build_model",
    "load_resnet50_weights",
    "resnet50",
    "resnet_depth_blocks",
]

#: Names accepted by :func:`build_model`: the catalogue's networks (``pyrobust.catalog.NETWORKS``).
MODELS = tuple(NETWORKS)

#: ImageNet networks :func:`build_model` also builds (section 5.3, Clothing1M), outside Table 2's catalogue.
IMAGENET_MODELS = ("resnet50",)

#: Dropout of each model when ``dropout=None``: the paper's text. The authors' code disagrees for ``fc``.
DEFAULT_DROPOUT = {
    "fc": 0.5,  # paper text 0.5; the authors' Keras code uses 0.2
    "embedding": 0.8,
    "lstm": 0.5,
}


def build_model(name: str, num_classes: int, *, bn_head: bool = False, dropout: float | None = None,
                in_features: int | None = None) -> nn.Module:
    """Build one of the paper's networks (see the module docstring), freshly initialised from torch's RNG.

    ``name`` in :data:`MODELS` or :data:`IMAGENET_MODELS`; ``num_classes`` is C, the width of the logits
    ``(N, C)``; ``bn_head`` appends ``BatchNorm1d(C)`` on the logits (for ``unhinged_bn`` / ``sigmoid_bn``);
    ``dropout`` overrides the paper's rate for fc/embedding/lstm (``None``: :data:`DEFAULT_DROPOUT`; ResNets
    have no dropout); ``in_features`` is the input width of ``fc`` (``None``: MNIST's 784; ignored by the
    other networks). ``resnet50`` is :func:`resnet50` without weights (load them with
    :func:`load_resnet50_weights` before adding a head).

    Raises:
        ValueError: unknown ``name``, ``num_classes < 2``, a dropout outside ``[0, 1)``, or a dropout given
            for a ResNet.
    """
    if name not in MODELS and name not in IMAGENET_MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS + IMAGENET_MODELS)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if name == "resnet50":
        if dropout is not None:
            raise ValueError(f"{name} has no dropout layer; leave dropout=None")
        model: nn.Module = resnet50(num_classes)
    elif name.startswith("resnet"):
        if dropout is not None:
            raise ValueError(f"{name} has no dropout layer; leave dropout=None")
        model = PreActResNet(int(name.removeprefix("resnet")), num_classes)
    else:
        p = DEFAULT_DROPOUT[name] if dropout is None else dropout
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        cls = {"fc": FullyConnected, "embedding": WordEmbedding, "lstm": EmbeddingLSTM}[name]
        if name == "fc" and in_features is not None:
            model = cls(num_classes, dropout=p, in_features=int(in_features))
        else:
            model = cls(num_classes, dropout=p)
    if bn_head:
        model = nn.Sequential(model, nn.BatchNorm1d(num_classes))
    return model
