import math

import pytest
import torch
from torch import nn

from pyrobust.models import MODELS, Dropout, build_model, resnet_depth_blocks


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def dense(i: int, o: int) -> int:
    return i * o + o


def expected_resnet_params(depth: int, C: int) -> int:
    """Count from the architecture: stem, blocks (2 BN + 2 conv3x3 [+ 1x1 shortcut]), final BN, dense."""
    n = (depth - 2) // 6
    total = 9 * 3 * 16
    c_in = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += 2 * c_in + 9 * c_in * width + 2 * width + 9 * width * width
            if c_in != width:
                total += c_in * width
            c_in = width
    return total + 2 * 64 + dense(64, C)


@pytest.mark.parametrize(
    "name,C,expected",
    [
        ("fc", 10, dense(784, 128) + dense(128, 128) + dense(128, 10)),
        ("embedding", 2, 5000 * 50 + dense(400 * 50, 2)),
        # LSTM: 4 gates, each with input and recurrent weights and two bias vectors (PyTorch keeps both)
        ("lstm", 2, 5000 * 256 + 4 * (512 * 256 + 512 * 512 + 2 * 512) + dense(512, 512) + dense(512, 2)),
        ("resnet14", 10, expected_resnet_params(14, 10)),
        ("resnet32", 10, expected_resnet_params(32, 10)),
        ("resnet44", 100, expected_resnet_params(44, 100)),
    ],
)
def test_parameter_count_matches_architecture(name, C, expected):
    assert n_params(build_model(name, C)) == expected


def test_resnet_parameter_counts_match_the_resnet_paper_scale():
    # He et al. (2016) report 0.27M parameters for ResNet-20 and 0.46M for ResNet-32 on CIFAR-10 (with
    # zero-padding shortcuts); our 1x1 projections add 16*32 + 32*64 = 2,560 weights.
    assert n_params(build_model("resnet32", 10)) == pytest.approx(0.46e6 + 2560, rel=0.02)


@pytest.mark.parametrize(
    "name,x",
    [
        ("fc", torch.rand(5, 784)),
        ("embedding", torch.randint(0, 5000, (5, 400))),
        ("lstm", torch.randint(0, 5000, (5, 23))),
        ("resnet14", torch.randn(5, 3, 32, 32)),
    ],
)
@pytest.mark.parametrize("bn_head", [False, True])
def test_output_shape(name, x, bn_head):
    C = 7
    model = build_model(name, C, bn_head=bn_head).eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (5, C)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("depth", [14, 32, 44])
def test_resnet_depth_counts_weight_layers(depth):
    model = build_model(f"resnet{depth}", 10)
    convs3x3 = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs3x3) + len(linears) == depth
    assert resnet_depth_blocks(depth) == (depth - 2) // 6


def test_resnet_block_is_preactivation_and_downsamples():
    model = build_model("resnet14", 10)
    feats = model.blocks(model.stem(torch.randn(2, 3, 32, 32)))
    assert feats.shape == (2, 64, 8, 8)
    block = model.blocks[0]
    names = [n for n, _ in block.named_children()]
    assert names[:4] == ["bn1", "conv1", "bn2", "conv2"]


@pytest.mark.parametrize("depth", [13, 2, 20.5])
def test_bad_resnet_depth(depth):
    with pytest.raises(ValueError, match="6n"):
        resnet_depth_blocks(depth)


@pytest.mark.parametrize("name", MODELS)
def test_bn_head_is_batchnorm_on_the_logits(name):
    model = build_model(name, 3, bn_head=True)
    head = list(model.children())[-1]
    assert isinstance(head, nn.BatchNorm1d) and head.num_features == 3
    assert n_params(model) == n_params(build_model(name, 3)) + 2 * 3


def test_bn_head_whitens_logits_in_training_mode():
    model = build_model("fc", 10, bn_head=True).train()
    out = model(torch.rand(256, 784))
    assert torch.allclose(out.mean(0), torch.zeros(10), atol=1e-5)
    assert torch.allclose(out.std(0, unbiased=False), torch.ones(10), atol=1e-2)


def test_paper_initialisation():
    torch.manual_seed(0)
    model = build_model("fc", 10)
    fc1, fc2, out = [m for m in model if isinstance(m, nn.Linear)]
    # He init before the ReLUs: std sqrt(2 / fan_in)
    assert fc1.weight.std().item() == pytest.approx(math.sqrt(2 / 784), rel=0.05)
    assert fc2.weight.std().item() == pytest.approx(math.sqrt(2 / 128), rel=0.05)
    # uniform in [-0.05, 0.05] otherwise: std 0.1 / sqrt(12)
    assert out.weight.abs().max().item() <= 0.05
    assert out.weight.std().item() == pytest.approx(0.1 / math.sqrt(12), rel=0.1)
    for layer in (fc1, fc2, out):
        assert torch.count_nonzero(layer.bias) == 0


def test_dropout_default_and_override():
    rates = [m.p for m in build_model("fc", 10).modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.5, 0.5]
    rates = [m.p for m in build_model("fc", 10, dropout=0.2).modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.2, 0.2]
    assert [m.p for m in build_model("embedding", 2).modules() if isinstance(m, nn.Dropout)] == [0.8]
    with pytest.raises(ValueError, match="no dropout"):
        build_model("resnet14", 10, dropout=0.1)


@pytest.mark.parametrize("p", [0.5, 0.8, 0.2])
def test_dropout_is_inverted_dropout(p):
    layer = Dropout(p)
    x = torch.rand(400, 500) + 0.5  # no zeros: a zero in the output means a dropped element
    x.requires_grad_(True)
    torch.manual_seed(0)
    out = layer(x)
    kept = out != 0
    # kept elements are scaled by 1 / (1 - p), the rest are zero; each is kept with probability 1 - p
    torch.testing.assert_close(out[kept], x[kept] / (1 - p))
    n = kept.numel()
    assert abs(kept.sum().item() / n - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    # the gradient goes through the kept elements only, with the same scale
    out.backward(torch.ones_like(out))
    torch.testing.assert_close(x.grad, kept.float() / (1 - p))
    # the mask comes from torch's seeded global generator, as nn.Dropout's does
    torch.manual_seed(0)
    assert torch.equal(layer(x), out)
    assert not torch.equal(layer(x), out)


def test_dropout_off_in_eval_and_at_rate_zero():
    x = torch.randn(64, 32)
    layer = Dropout(0.5).eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(Dropout(0.0)(x), x)


def test_lstm_forget_gate_bias_is_one():
    lstm = build_model("lstm", 2).lstm
    bias = lstm.bias_ih_l0 + lstm.bias_hh_l0
    assert torch.all(bias[512:1024] == 1) and torch.count_nonzero(bias[:512]) == 0


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = build_model("resnet14", 10)
    torch.manual_seed(3)
    b = build_model("resnet14", 10)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_unknown_model_and_bad_classes():
    with pytest.raises(ValueError, match="known models: fc, embedding"):
        build_model("vgg16", 10)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("fc", 1)


def test_embedding_rejects_wrong_length():
    with pytest.raises(ValueError, match="N x 400"):
        build_model("embedding", 2)(torch.zeros(2, 10, dtype=torch.long))


# --- ResNet-50 (section 5.3, Clothing1M) ------------------------------------------------------------------

#: SHA-256 of "key:shape" lines of torchvision 0.28's ``resnet50().state_dict()`` (320 entries), computed
#: from torchvision itself: the state dicts of the two networks have the same keys, order and shapes, so
#: torchvision's ImageNet weight files load. (Forward outputs were also checked bit-identical, train and
#: eval mode, on the same weights.)
TORCHVISION_RESNET50_LAYOUT = "781bb16f43b8f96f5f2ada850a89ff3e7a89c845484027404ea1ba359f00987a"


class Payload:
    """An arbitrary object in a pickle: ``torch.load(weights_only=True)`` refuses to build it."""


def layout_digest(model: nn.Module) -> str:
    import hashlib

    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory):
    """A stand-in for torchvision's resnet50-0676ba61.pth: a 1000-class state dict saved without the
    ``num_batches_tracked`` entries (as the published files)."""
    from pyrobust.models import resnet50

    torch.manual_seed(1)
    state = {k: v for k, v in resnet50(1000).state_dict().items() if not k.endswith("num_batches_tracked")}
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}  # not the fresh init
    path = tmp_path_factory.mktemp("weights") / "resnet50-imagenet.pth"
    torch.save(state, path)
    return path, state


def test_resnet50_has_torchvisions_layout():
    from pyrobust.models import resnet50

    model = resnet50(1000)
    assert layout_digest(model) == TORCHVISION_RESNET50_LAYOUT
    assert n_params(model) == 25_557_032  # torchvision's documented count
    assert n_params(build_model("resnet50", 14)) == 25_557_032 - 2049 * 1000 + 2049 * 14
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m not in
             [b.downsample[0] for b in model.modules() if getattr(b, "downsample", None) is not None]]
    assert len(convs) + 1 == 50  # 49 convolutions on the main path + the dense head: 50 layers


def test_resnet50_matches_torchvision_when_installed():
    try:
        import torchvision.models
    except Exception as err:  # absent, or a build for another torch (its compiled ops fail to load)
        pytest.skip(f"torchvision does not import: {err}")
    from pyrobust.models import resnet50

    theirs = torchvision.models.resnet50().eval()
    ours = resnet50(1000).eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_resnet50_output_and_input_check():
    model = build_model("resnet50", 14, bn_head=True).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 14) and out.dtype == torch.float32 and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        build_model("resnet50", 14)(torch.randn(2, 64, 64))
    with pytest.raises(ValueError, match="no dropout"):
        build_model("resnet50", 14, dropout=0.1)


def test_imagenet_weights_load_with_a_new_head(imagenet_file):
    from pyrobust.models import UNIFORM_INIT, load_resnet50_weights, resnet50

    path, state = imagenet_file
    model = load_resnet50_weights(resnet50(14), path)
    loaded = model.state_dict()
    for key, value in state.items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key
    # the 14-class head keeps the paper's init for a new output layer: U[-0.05, 0.05], bias 0
    assert model.fc.weight.shape == (14, 2048) and model.fc.weight.abs().max() <= UNIFORM_INIT
    assert torch.count_nonzero(model.fc.bias) == 0
    assert int(model.bn1.num_batches_tracked) == 0


def test_imagenet_weights_errors_name_the_file(imagenet_file, tmp_path):
    from pyrobust.models import load_resnet50_weights, resnet50

    path, state = imagenet_file
    model = resnet50(14)
    with pytest.raises(FileNotFoundError, match=r"imagenet_weights \(config key\): .*absent.pth does not exist"):
        load_resnet50_weights(model, tmp_path / "absent.pth", what="imagenet_weights (config key)")
    with pytest.raises(ValueError, match=r"resnet50-imagenet.pth: .*2 wrong shape: fc.weight \(1000, 2048\)"):
        load_resnet50_weights(model, path, head="load")  # a 1000-class head is not a 14-class checkpoint

    torch.save({"conv1.weight": Payload()}, tmp_path / "code.pth")
    with pytest.raises(ValueError, match=r"code.pth: not a weights-only torch file"):
        load_resnet50_weights(model, tmp_path / "code.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"junk.pth: not a weights-only torch file"):
        load_resnet50_weights(model, tmp_path / "junk.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list.pth: expected a state dict"):
        load_resnet50_weights(model, tmp_path / "list.pth")
    torch.save(build_model("resnet14", 10).state_dict(), tmp_path / "cifar.pth")
    with pytest.raises(ValueError, match=r"cifar.pth: not a ResNet-50 state dict .*missing: conv1.weight"):
        load_resnet50_weights(model, tmp_path / "cifar.pth")
    renamed = {("module." + k): v for k, v in state.items()}
    torch.save(renamed, tmp_path / "ddp.pth")
    with pytest.raises(ValueError, match=r"unexpected: module.conv1.weight"):
        load_resnet50_weights(model, tmp_path / "ddp.pth")


def test_the_package_keeps_the_names_of_the_former_module():
    """``pyrobust.models`` is a package of one-job modules; every name callers imported from the single
    module is still importable from it, and is the object its module defines."""
    import pyrobust.models as models
    from pyrobust.models import cifar_resnet, dropout, fc, imagenet_resnet, init, text

    homes = {
        init: ["UNIFORM_INIT"],
        dropout: ["Dropout"],
        fc: ["FullyConnected"],
        text: ["VOCAB_SIZE", "SEQUENCE_LENGTH", "WordEmbedding", "EmbeddingLSTM"],
        cifar_resnet: ["PreActBlock", "PreActResNet", "resnet_depth_blocks"],
        imagenet_resnet: ["Bottleneck", "ResNet50", "resnet50", "load_resnet50_weights"],
    }
    for module, names in homes.items():
        for name in names:
            assert getattr(models, name) is getattr(module, name), name
    assert set(models.__all__) == {"IMAGENET_MODELS", "MODELS", "Bottleneck", "Dropout", "ResNet50", "build_model",
                                   "load_resnet50_weights", "resnet50", "resnet_depth_blocks"}
    assert models.DEFAULT_DROPOUT == {"fc": 0.5, "embedding": 0.8, "lstm": 0.5}
    assert callable(models.resnet50)  # the function, not a submodule of that name
