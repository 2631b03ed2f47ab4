import json
import math
import os

import numpy as np
import pytest
import torch

import pyrobust.train as tr
from pyrobust.data import Dataset, load
from pyrobust.train import NoisyLabels, TrainConfig, corrupt_labels, identity_mix_for, train, train_methods, write_record

# the record fields promised in the brief (workflow and report read these)
SCHEMA = {
    "dataset": str, "model": str, "method": str, "noise": str, "N": float, "seed": int,
    "test_accuracy": float, "best_epoch": int, "epochs": int, "val_loss": list, "val_accuracy": list,
    "T": list, "T_hat": (list, type(None)), "estimation_error": (dict, type(None)),
    "realised_noise_rate": float, "wall_time_s": float, "device": str, "threads": int, "versions": dict,
    "config": dict,
}


@pytest.fixture(scope="module")
def small():
    """1,200 training and 400 test digits of MNIST-5k (real data, fast to train)."""
    full = load("mnist5k")
    g = torch.Generator().manual_seed(0)
    tr_idx = torch.randperm(len(full.y_train), generator=g)[:1200]
    te_idx = torch.randperm(len(full.y_test), generator=g)[:400]
    return Dataset(name="mnist5k", x_train=full.x_train[tr_idx], y_train=full.y_train[tr_idx],
                   x_test=full.x_test[te_idx], y_test=full.y_test[te_idx], num_classes=10)


def cfg(method="cross_entropy", **kw):
    base = dict(noise="asymmetric", N=0.6, seed=1, epochs=3, threads=1, device="cpu")
    return TrainConfig.paper("mnist5k", method, **{**base, **kw})


def test_paper_settings_per_dataset():
    mnist = TrainConfig.paper("mnist", "forward")
    assert (mnist.model, mnist.optimizer, mnist.lr, mnist.adagrad_eps, mnist.epochs, mnist.batch_size) == (
        "fc", "adagrad", 0.01, 1e-6, 40, 128)
    c10 = TrainConfig.paper("cifar10", "forward")
    assert (c10.model, c10.optimizer, c10.momentum, c10.weight_decay, c10.epochs, c10.lr_milestones) == (
        "resnet14", "sgd", 0.9, 1e-4, 120, (40, 80))
    c100 = TrainConfig.paper("cifar100", "forward", lr=0.1)
    assert (c100.model, c100.epochs, c100.lr_milestones, c100.lr, c100.augment) == ("resnet44", 150, (80, 120), 0.1, True)
    assert TrainConfig.paper("imdb", "forward").epochs == 50


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        TrainConfig.paper("svhn", "forward")
    with pytest.raises(ValueError, match="unknown config key"):
        TrainConfig.paper("mnist", "forward", learning_rate=0.1)
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig.paper("mnist", "forward", model="vgg")
    with pytest.raises(ValueError, match="N is a probability"):
        TrainConfig.paper("mnist", "forward", N=1.5)


@pytest.mark.parametrize(
    "text,expected",
    [("lr=0.1", ("lr", 0.1)), ("epochs=7", ("epochs", 7)), ("lr_milestones=40,80", ("lr_milestones", (40, 80))),
     ("lr_milestones=", ("lr_milestones", ())), ("augment=true", ("augment", True)), ("amp=0", ("amp", False)),
     ("dropout=none", ("dropout", None)), ("dropout=0.2", ("dropout", 0.2)), ("threads=2", ("threads", 2)),
     ("optimizer=sgd", ("optimizer", "sgd"))],
)
def test_parse_override_types_from_the_field(text, expected):
    assert TrainConfig.parse_override(text) == expected
    assert type(TrainConfig.parse_override(text)[1]) is type(expected[1])


@pytest.mark.parametrize("text,match", [("epochs=ten", "expected int"), ("bogus=1", "key=value"),
                                        ("lr", "key=value"), ("augment=maybe", "expected bool")])
def test_parse_override_errors(text, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.parse_override(text)


def test_adagrad_matches_duchi_delta_semantics():
    # one step from a zero accumulator: p - lr * g / (sqrt(g^2) + delta), delta added after the sqrt
    config = cfg(lr=0.5, adagrad_eps=0.1)
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0]]))
    opt = tr._optimizer(config, layer)
    g = torch.tensor([[0.3, -4.0]])
    layer.weight.grad = g.clone()
    opt.step()
    expected = torch.tensor([[1.0, -2.0]]) - 0.5 * g / (g.abs() + 0.1)
    torch.testing.assert_close(layer.weight.detach(), expected)


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_adagrad_is_torch_fused_adagrad_bit_for_bit(weight_decay):
    from pyrobust.models import build_model

    torch.manual_seed(0)
    ours, ref = build_model("fc", 10, bn_head=True), build_model("fc", 10, bn_head=True)
    ref.load_state_dict(ours.state_dict())
    opt = tr._optimizer(cfg(weight_decay=weight_decay), ours)
    ref_opt = torch.optim.Adagrad(ref.parameters(), lr=0.01, eps=1e-6, initial_accumulator_value=0.0,
                                  weight_decay=weight_decay, fused=True)
    for step in range(6):
        x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
        for model, optimizer in ((ours, opt), (ref, ref_opt)):
            torch.manual_seed(step)  # the same dropout masks
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            if step == 2:  # a parameter without a gradient is left alone
                model[0][0].bias.grad = None
            if step == 4:
                optimizer.param_groups[0]["lr"] = 0.003
            optimizer.step()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), name
    for s, q in zip(opt.sums, ref.parameters()):
        assert torch.equal(s, ref_opt.state[q]["sum"])


def test_learning_rate_schedule_is_multistep_lr():
    config = cfg(optimizer="sgd", lr=0.1, lr_milestones=(2, 5, 5), lr_gamma=0.1, epochs=8)
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(sgd, list(config.lr_milestones), gamma=config.lr_gamma)
    for epoch in range(1, config.epochs + 1):
        assert tr._learning_rate(config, epoch) == sgd.param_groups[0]["lr"], epoch
        sgd.step()
        scheduler.step()


def test_snapshot_restores_the_taken_state_in_place():
    from pyrobust.models import build_model

    torch.manual_seed(0)
    model = build_model("fc", 10, bn_head=True)  # parameters and batch-norm buffers
    opt = tr._optimizer(cfg(lr=0.1), model)

    def train_steps(n):
        for _ in range(n):
            loss = model(torch.rand(16, 784)).logsumexp(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    snapshot = tr._Snapshot(model)
    storages = [t.data_ptr() for t in model.state_dict().values()]
    train_steps(2)
    snapshot.take()
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    train_steps(3)
    assert not torch.equal(model.state_dict()["0.0.weight"], expected["0.0.weight"])
    assert model.state_dict()["1.num_batches_tracked"] == 5
    snapshot.restore()
    state = model.state_dict()
    assert state.keys() == expected.keys()
    for k, v in expected.items():
        assert torch.equal(state[k], v), k
    # restored into the model's own tensors: the optimiser still holds the parameters it updates
    assert [t.data_ptr() for t in state.values()] == storages
    assert all(p is q for p, q in zip(opt.params, model.parameters()))


def test_deterministic_mode_is_set_inside_and_restored_after():
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with tr._deterministic(True):
            assert torch.are_deterministic_algorithms_enabled()
            assert not torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    with tr._deterministic(True):
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()


def test_an_adagrad_run_does_not_import_the_compiler():
    # torch.optim optimizers and torch.use_deterministic_algorithms import torch._dynamo / torch._inductor:
    # about a second of every fresh process (a workflow job), half an MNIST run
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from pyrobust.data import Dataset\n"
        "from pyrobust.train import TrainConfig, train\n"
        "g = torch.Generator().manual_seed(0)\n"
        "data = Dataset(name='mnist5k', x_train=torch.rand(200, 784, generator=g), y_train=torch.arange(200) % 10,\n"
        "               x_test=torch.rand(50, 784, generator=g), y_test=torch.arange(50) % 10, num_classes=10)\n"
        "train(TrainConfig.paper('mnist5k', 'forward', noise='symmetric', N=0.2, epochs=2, device='cpu', threads=1),\n"
        "      data=data, progress=False)\n"
        "print(sorted(m for m in ('torch._dynamo', 'torch._inductor') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_same_seed_same_labels_split_and_accuracy(small):
    a, b = corrupt_labels(small, "asymmetric", 0.6, 3), corrupt_labels(small, "asymmetric", 0.6, 3)
    assert np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, corrupt_labels(small, "asymmetric", 0.6, 4).labels)
    tr1, va1 = tr._split(1200, 0.1, 5)
    tr2, va2 = tr._split(1200, 0.1, 5)
    assert torch.equal(tr1, tr2) and torch.equal(va1, va2)
    assert len(va1) == 120 and len(tr1) == 1080 and len(set(tr1.tolist()) | set(va1.tolist())) == 1200
    assert not torch.equal(va1, tr._split(1200, 0.1, 6)[1])
    r1 = train(cfg(seed=5), data=small, progress=False)
    r2 = train(cfg(seed=5), data=small, progress=False)
    assert r1["test_accuracy"] == r2["test_accuracy"] and r1["val_loss"] == r2["val_loss"]
    r3 = train(cfg(seed=6), data=small, progress=False)
    assert r3["val_loss"] != r1["val_loss"]


def test_keeps_the_lowest_validation_loss_epoch(small, monkeypatch):
    # Replace the validation loss by a scripted curve; the kept weights must be those after epoch 2.
    curve = iter([0.9, 0.5, 0.7, float("nan")])
    snapshots = []
    real_evaluate = tr._evaluate

    def scripted(model, loss_fn, x, y, prep, config):
        if loss_fn is None:  # the test-set evaluation
            return real_evaluate(model, loss_fn, x, y, prep, config)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(curve), 50.0

    monkeypatch.setattr(tr, "_evaluate", scripted)
    kept = {}
    real_build = tr.build_model

    def capture(*args, **kwargs):
        kept["model"] = real_build(*args, **kwargs)
        return kept["model"]

    monkeypatch.setattr(tr, "build_model", capture)
    record = train(cfg(epochs=4), data=small, progress=False)
    assert record["best_epoch"] == 2
    assert record["val_loss"] == [0.9, 0.5, 0.7, None]  # NaN is written as null
    for k, v in kept["model"].state_dict().items():
        assert torch.equal(v, snapshots[1][k]), k


def test_selected_epoch_equals_a_run_stopped_there(small):
    # On CPU a run is deterministic, so training only up to the selected epoch gives the same test accuracy.
    long = train(cfg(epochs=6, lr=0.05), data=small, progress=False)
    best = long["best_epoch"]
    assert long["val_loss"][best - 1] == min(long["val_loss"])
    short = train(cfg(epochs=best, lr=0.05), data=small, progress=False)
    assert short["best_epoch"] == best
    assert short["test_accuracy"] == long["test_accuracy"]


def test_record_schema_and_values(small, tmp_path):
    T_hat = torch.full((10, 10), 0.02, dtype=torch.float64) + 0.8 * torch.eye(10, dtype=torch.float64)
    records = train_methods(cfg(epochs=2), ["cross_entropy", "forward_est"], data=small, T_hat=T_hat,
                            save_probs=tmp_path / "p.npy", progress=False)
    assert [r["method"] for r in records] == ["cross_entropy", "forward_est"]
    for record in records:
        for key, types in SCHEMA.items():
            assert isinstance(record[key], types), key
        assert record["epochs"] == 2 and len(record["val_loss"]) == len(record["val_accuracy"]) == 2
        assert 0 <= record["test_accuracy"] <= 100
        assert record["sizes"] == {"train": 1080, "val": 120, "test": 400}
        assert record["config"]["method"] == record["method"]
        json.dumps(record, allow_nan=False)
    noisy = corrupt_labels(small, "asymmetric", 0.6, 1)
    assert records[0]["realised_noise_rate"] == pytest.approx(np.mean(noisy.labels != small.y_train.numpy()))
    assert np.allclose(records[0]["T"], noisy.T)
    err = records[1]["estimation_error"]
    assert err["mae"] == pytest.approx((T_hat - torch.from_numpy(noisy.T)).abs().mean().item(), rel=1e-6)
    probs = np.load(tmp_path / "p.npy", allow_pickle=False)
    assert probs.shape == (1200, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_forward_correction_beats_cross_entropy_at_high_asymmetric_noise():
    # the paper's key result (Table 2, MNIST asymm. N=0.6: 97.3 vs 53.0), on MNIST-5k with 12 epochs
    records = train_methods(cfg(epochs=12, seed=0), ["cross_entropy", "forward"], progress=False)
    ce, fwd = (r["test_accuracy"] for r in records)
    assert fwd > ce + 15, (ce, fwd)


def test_identity_mix_rule():
    assert identity_mix_for(torch.eye(4, dtype=torch.float64), 100.0) == 0.0
    singular = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64)
    lam = identity_mix_for(singular, 10.0)
    mixed = (1 - lam) * singular + lam * torch.eye(2, dtype=torch.float64)
    assert torch.linalg.cond(mixed) <= 10.0
    smaller = (1 - (lam - 0.01)) * singular + (lam - 0.01) * torch.eye(2, dtype=torch.float64)
    assert torch.linalg.cond(smaller) > 10.0  # the smallest such mix on the grid


def test_backward_with_singular_T_hat_mixes_instead_of_crashing(small):
    T_hat = torch.full((10, 10), 0.1, dtype=torch.float64)  # rank one: not invertible
    record = train(cfg("backward_est", epochs=1), data=small, T_hat=T_hat, progress=False)
    assert 0 < record["identity_mix"] <= 1
    assert math.isfinite(record["test_accuracy"])
    assert train(cfg("backward", epochs=1), data=small, progress=False)["identity_mix"] == 0.0


def test_errors_on_bad_requests(small):
    with pytest.raises(ValueError, match="cross_entropy"):
        train_methods(cfg(), ["not_a_method"], data=small)
    with pytest.raises(ValueError, match="T_hat"):
        train(cfg("forward_est"), data=small)
    with pytest.raises(ValueError, match="cross_entropy"):
        train(cfg("forward"), data=small, save_probs="p.npy")
    other = corrupt_labels(small, "symmetric", 0.2, 1)
    with pytest.raises(ValueError, match="noisy labels are for"):
        train(cfg(), data=small, noisy=other)
    wrong_size = NoisyLabels("mnist5k", "asymmetric", 0.6, 1, other.labels[:100], other.T)
    with pytest.raises(ValueError, match="100 noisy labels"):
        train(cfg(), data=small, noisy=wrong_size)


def test_noisy_labels_round_trip_and_bad_file(small, tmp_path):
    noisy = corrupt_labels(small, "symmetric", 0.2, 7)
    noisy.save(tmp_path / "n.npz")
    back = NoisyLabels.load(tmp_path / "n.npz")
    assert (back.dataset, back.noise, back.N, back.seed) == ("mnist5k", "symmetric", 0.2, 7)
    assert np.array_equal(back.labels, noisy.labels) and np.array_equal(back.T, noisy.T)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        NoisyLabels.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="pyrobust corrupt"):
        NoisyLabels.load(tmp_path / "absent.npz")


def test_write_record_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out" / "forward.json"
    write_record({"a": 1, "b": [1.5]}, path)
    assert json.loads(path.read_text()) == {"a": 1, "b": [1.5]}

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_record({"a": 2}, path)
    assert json.loads(path.read_text()) == {"a": 1, "b": [1.5]}  # the old record is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["forward.json"]  # no temporary left behind
    monkeypatch.undo()
    with pytest.raises(ValueError):
        write_record({"a": float("nan")}, path)  # strict JSON


def synthetic(name, x_train, x_test, C):
    g = torch.Generator().manual_seed(0)
    return Dataset(name=name, x_train=x_train, y_train=torch.randint(0, C, (len(x_train),), generator=g),
                   x_test=x_test, y_test=torch.randint(0, C, (len(x_test),), generator=g), num_classes=C)


@pytest.mark.parametrize(
    "dataset,model,shape,method",
    [("cifar10", "resnet14", (3, 32, 32), "forward"), ("imdb", "embedding", (400,), "sigmoid_bn"),
     ("imdb", "lstm", (12,), "backward")],
)
def test_other_data_shapes_train_end_to_end(dataset, model, shape, method):
    # CIFAR path: SGD + momentum, lr milestones, crop/flip augmentation, batch norm; IMDB: token ids
    g = torch.Generator().manual_seed(1)
    if dataset == "imdb":
        make = lambda n: torch.randint(0, 5000, (n, *shape), generator=g)  # noqa: E731
    else:
        make = lambda n: torch.randn(n, *shape, generator=g)  # noqa: E731
    C = 10 if dataset == "cifar10" else 2
    data = synthetic(dataset, make(150), make(40), C)
    config = TrainConfig.paper(dataset, method, model=model, noise="symmetric", N=0.2, epochs=2, batch_size=32,
                               lr_milestones=(1,), device="cpu", threads=1)
    assert config.augment is (dataset == "cifar10")
    record = train(config, data=data, progress=False)
    assert record["sizes"] == {"train": 135, "val": 15, "test": 40}
    assert all(v is not None for v in record["val_loss"]) and 0 <= record["test_accuracy"] <= 100


def test_corrupt_labels_cifar100_uses_superclasses_of_the_data():
    """CIFAR-100's asymmetric T comes from its own coarse labels (per example in the data set)."""
    from pyrobust.noise import CIFAR100_COARSE_LABELS, asymmetric

    y = torch.arange(100).repeat(20)
    coarse = torch.as_tensor(CIFAR100_COARSE_LABELS)[y]
    data = Dataset(name="cifar100", x_train=torch.zeros(len(y), 3, 32, 32), y_train=y,
                   x_test=torch.zeros(1, 3, 32, 32), y_test=torch.zeros(1, dtype=torch.int64),
                   num_classes=100, coarse_train=coarse, coarse_test=torch.zeros(1, dtype=torch.int64))
    noisy = corrupt_labels(data, "asymmetric", 0.2, seed=0)
    np.testing.assert_array_equal(noisy.T, asymmetric("cifar100", 0.2).numpy())
    # a flip never leaves the superclass
    flipped = noisy.labels != y.numpy()
    assert flipped.any()
    np.testing.assert_array_equal(np.asarray(CIFAR100_COARSE_LABELS)[noisy.labels[flipped]],
                                  coarse.numpy()[flipped])
