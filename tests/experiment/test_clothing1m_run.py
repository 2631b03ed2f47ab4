"""Clothing1M (Table 3): the paper's settings, T from the clean subset, one training step of the DataLoader
loop, the sample order and augmentation under data parallelism, and DDP (2 processes, gloo) == 1 process.

Every test trains a tiny network (the 14-layer pre-activation ResNet) on a fixture tree of a few tiny
random JPEGs written by PIL, resized to 8 and cropped to 6 pixels, so that the whole file runs in seconds.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from pyrobust.data.clothing1m import KEY_LISTS, NUM_CLASSES, load_clothing1m
from pyrobust.data.images import ImageTransform
from pyrobust.experiment import distributed
from pyrobust.experiment.clothing1m import (
    PAPER_TRAINING,
    Clothing1MConfig,
    estimate,
    load_checkpoint,
    load_config,
    main,
    save_checkpoint,
    train_clothing1m,
)
from pyrobust.experiment.images import SeededItems, fit_loader, train_loader
from pyrobust.experiment.loop import derived_seed
from pyrobust.experiment.optim import learning_rate
from pyrobust.models import build_model

ROOT = Path(__file__).resolve().parents[2]
CPU = distributed.World(rank=0, size=1, local_rank=0, device=torch.device("cpu"), backend=None)


def make_tree(root: Path, *, extra_noisy: int = 10, seed: int = 0) -> Path:
    """A tiny Clothing1M: per class three clean training images that also carry a noisy label (the class,
    the next class, the class again: ``T = 2/3 I + 1/3 shift``), ``extra_noisy`` noisy-only images, 4
    validation and 3 test images; random RGB JPEGs of 8-10 x 8-11 pixels."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    noisy, clean, lists = {}, {}, {split: [] for split in KEY_LISTS}

    count = 0

    def add(splits, clean_label=None, noisy_label=None):
        nonlocal count
        key = f"images/{count % 3}/{count}.jpg"
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (8 + count % 3, 8 + count % 4, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / key, quality=95)
        count += 1
        if clean_label is not None:
            clean[key] = clean_label
        if noisy_label is not None:
            noisy[key] = noisy_label
        for split in splits:
            lists[split].append(key)

    for c in range(NUM_CLASSES):
        for noisy_label in (c, (c + 1) % NUM_CLASSES, c):
            add(["clean_train", "noisy_train"], c, noisy_label)
    for i in range(extra_noisy):
        add(["noisy_train"], None, (5 * i) % NUM_CLASSES)
    for c in (1, 5, 9, 13):
        add(["clean_val"], c)
    for c in (0, 4, 8):
        add(["clean_test"], c)
    (root / "category_names_eng.txt").write_text("".join(f"class {i}\n" for i in range(NUM_CLASSES)))
    (root / "noisy_label_kv.txt").write_text("".join(f"{k} {v}\n" for k, v in noisy.items()))
    (root / "clean_label_kv.txt").write_text("".join(f"{k} {v}\n" for k, v in clean.items()))
    for split, name in KEY_LISTS.items():
        (root / name).write_text("".join(f"{k}\n" for k in lists[split]))
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("data") / "clothing1m")


#: A run small enough for CPU: the tiny ResNet, 8 -> 6 pixel crops, 2 epochs of batches of 4.
TINY = dict(model="resnet14", init="scratch", epochs=2, lr=0.05, lr_milestones=[1], batch_size=4, resize=8,
            crop=6, device="cpu", workers=0, eval_batch_size=8, log_every=0, threads=1)


def tiny(**overrides) -> Clothing1MConfig:
    settings = {**TINY, **overrides}
    settings["lr_milestones"] = tuple(settings["lr_milestones"])
    return Clothing1MConfig(**settings)


def write_config(path: Path, data_root: Path, runs: dict) -> Path:
    path.write_text(yaml.safe_dump({"data_root": str(data_root), "out_dir": str(path.parent / "out"), **TINY,
                                    "runs": runs}))
    return path


def expected_T() -> torch.Tensor:
    eye = torch.eye(NUM_CLASSES, dtype=torch.float64)
    return 2 / 3 * eye + 1 / 3 * eye.roll(1, dims=1)


# ----------------------------------------------------------------------------------------- the paper's settings


def test_defaults_are_the_papers_settings():
    """Sec. 5.3: SGD, lr 1e-3 then 1e-4 for 5 epochs each, momentum 0.9, batch 32; weight decay 5e-2 with
    augmentation on the 50k, 1e-3 without on the 1M; ResNet-50 from ImageNet; 224 crops."""
    noisy = Clothing1MConfig(method="forward", train_set="noisy", imagenet_weights="w.pth")
    clean = Clothing1MConfig(method="cross_entropy", train_set="clean")
    for c in (noisy, clean):
        assert (c.model, c.init, c.epochs, c.momentum, c.batch_size, c.crop) == ("resnet50", "imagenet", 10, 0.9, 32, 224)
        assert [learning_rate(c, e) for e in range(1, 11)] == pytest.approx([1e-3] * 5 + [1e-4] * 5)
        assert c.selection == "val_loss" and c.batch_norm == "global" and c.transition == "clean_train"
    assert (noisy.weight_decay, noisy.augment) == (1e-3, False) == tuple(PAPER_TRAINING["noisy"].values())
    assert (clean.weight_decay, clean.augment) == (5e-2, True) == tuple(PAPER_TRAINING["clean"].values())
    assert noisy.replace(weight_decay=0.0).weight_decay == 0.0
    assert noisy.to_dict()["lr_milestones"] == [5]


def test_the_experiment_package_loads_train_clothing1m_lazily():
    import pyrobust.experiment

    assert "train_clothing1m" in pyrobust.experiment.__all__
    assert pyrobust.experiment.train_clothing1m is train_clothing1m


def test_config_file_holds_table_3s_rows(tmp_path):
    """config/clothing1m.yaml: the paper's settings, rows #4-#8 with the paper's method, training set and
    initialisation; #8 starts from #6's checkpoint; the paper's Table 3 CSV has those rows' numbers."""
    path = ROOT / "config" / "clothing1m.yaml"
    expected = {"ce_1m": (4, "cross_entropy", "noisy", "imagenet"), "backward_1m": (5, "backward", "noisy", "imagenet"),
                "forward_1m": (6, "forward", "noisy", "imagenet"), "ce_50k": (7, "cross_entropy", "clean", "imagenet"),
                "forward_1m_ft_50k": (8, "cross_entropy", "clean", "checkpoint")}
    for run, (row, method, train_set, init) in expected.items():
        config, options = load_config(path, run)
        assert (config.row, config.method, config.train_set, config.init) == (row, method, train_set, init)
        assert (config.lr, config.lr_milestones, config.epochs, config.batch_size) == (1e-3, (5,), 10, 32)
        assert config.weight_decay == {"noisy": 1e-3, "clean": 5e-2}[train_set]
        assert config.imagenet_weights and config.data_root is None
    config, options = load_config(path, "forward_1m_ft_50k")
    assert Path(config.init_checkpoint) == options["out_dir"] / "forward_1m.pt"
    assert load_config(path, "ce_1m")[1]["save_probs"] is True
    assert load_config(path, "forward_est_1m")[0].method == "forward_est"

    import pandas as pd

    paper = pd.read_csv(ROOT / "workflow" / "resources" / "table3-paper.csv")
    assert list(paper.columns[:3]) == ["dataset", "model", "method"]
    assert paper["accuracy"].tolist() == [72.63, 76.22, 78.24, 68.94, 69.13, 69.84, 75.19, 80.38]
    resnet = paper[paper.model == "resnet50"].set_index("row")
    for run, (row, method, train_set, _) in expected.items():
        assert resnet.loc[row, "method"] == method
        assert resnet.loc[row, "training"] == {"noisy": "1M", "clean": "50k"}[train_set]
    assert resnet.loc[8, "init"] == "#6" and resnet.loc[5, "T"] == "clean 50k"


def test_config_errors_name_the_file_and_the_choices(tmp_path):
    path = write_config(tmp_path / "c.yaml", tmp_path, {"a": {"method": "forward"}})
    with pytest.raises(ValueError, match=r"c.yaml: no run 'b'; runs: a"):
        load_config(path, "b")
    with pytest.raises(ValueError, match=r"c.yaml: unknown key\(s\) \['learning_rate'\]"):
        load_config(path, "a", {"learning_rate": 1.0})
    with pytest.raises(ValueError, match="unknown method 'forwards'"):
        load_config(path, "a", {"method": "forwards"})
    with pytest.raises(ValueError, match="model must be resnet50"):
        Clothing1MConfig(model="resnet14", init="imagenet")
    with pytest.raises(ValueError, match="train_set must be one of noisy, clean"):
        Clothing1MConfig(train_set="1M")
    with pytest.raises(FileNotFoundError, match="no such config file"):
        load_config(tmp_path / "absent.yaml", "a")


def test_imagenet_weights_are_a_local_file_named_by_its_config_key(tree, tmp_path):
    config = Clothing1MConfig(method="cross_entropy", device="cpu", workers=0)
    with pytest.raises(ValueError, match=r"imagenet_weights \(config key\) is not set"):
        train_clothing1m(config, data=load_clothing1m(path=tree), world=CPU)
    missing = tmp_path / "resnet50-0676ba61.pth"
    with pytest.raises(FileNotFoundError, match=rf"imagenet_weights \(config key\): {missing} does not exist"):
        train_clothing1m(config.replace(imagenet_weights=str(missing)), data=load_clothing1m(path=tree), world=CPU)


# ----------------------------------------------------------------------------------------- T and one step


def test_T_from_the_clean_subset_drives_the_correction(tree):
    """Rows #5/#6: T counted on the clean training images that also carry a noisy label (sec. 5.3)."""
    data = load_clothing1m(path=tree)
    torch.testing.assert_close(data.transition_from_clean(), expected_T())
    record = train_clothing1m(tiny(method="forward", epochs=1), data=data, world=CPU)
    torch.testing.assert_close(torch.tensor(record["T"], dtype=torch.float64), expected_T())
    assert record["T_source"] == "clean 50k" and record["T_hat"] is None and record["identity_mix"] == 0.0
    assert record["realised_noise_rate"] == pytest.approx(1 / 3)
    # the backward correction inverts that T; 2/3 I + 1/3 shift is well conditioned (cond_2 = 3)
    backward = train_clothing1m(tiny(method="backward", epochs=1), data=data, world=CPU)
    assert backward["identity_mix"] == 0.0 and backward["T_source"] == "clean 50k"


def test_one_training_step_is_sgd_on_the_mean_corrected_loss(tree):
    """The DataLoader path, one process: one epoch of one global batch (the whole training split) is one
    SGD step with momentum and weight decay on the mean forward-corrected loss of that batch."""
    from pyrobust.losses import ForwardCorrectedLoss

    data = load_clothing1m(path=tree)
    eval_t = ImageTransform.eval(8, 6)
    train_set = copy.copy(data.noisy_train)
    train_set.transform = eval_t
    val_set = copy.copy(data.clean_val)
    val_set.transform = eval_t
    n = len(train_set)
    config = tiny(method="forward", epochs=1, batch_size=n, lr=0.1, weight_decay=0.01, selection="last")
    torch.manual_seed(0)
    model = build_model("resnet14", NUM_CLASSES)
    reference = copy.deepcopy(model)
    loss_fn = ForwardCorrectedLoss(expected_T())

    history = fit_loader(config, model, loss_fn, train_set, val_set, CPU)

    assert history["steps"] == 1 and history["best_epoch"] == 1 and history["examples_per_epoch"] == n
    x = torch.stack([train_set[i][0] for i in range(n)])
    y = torch.as_tensor(train_set.labels)
    reference.train()
    loss = loss_fn(reference(x), y)
    loss.backward()
    assert history["train_loss"] == [pytest.approx(loss.item(), rel=1e-5)]
    with torch.no_grad():
        for p, q in zip(model.parameters(), reference.parameters()):
            # first step of torch's momentum SGD: the velocity is the gradient (plus weight decay)
            torch.testing.assert_close(p, q - 0.1 * (q.grad + 0.01 * q), rtol=1e-5, atol=1e-6)
        for (name, b), c in zip(model.named_buffers(), reference.buffers()):
            torch.testing.assert_close(b, c, rtol=1e-5, atol=1e-6, msg=name)


# ----------------------------------------------------------------------------------------- data parallelism


class Indices(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.tensor(i), torch.tensor(0)


@pytest.mark.parametrize("world_size", [2, 4])
def test_the_processes_batches_make_up_the_global_batch(world_size):
    """DistributedSampler, same seed: step k of N processes covers exactly batch k of one process."""
    config = tiny(batch_size=8)
    single, _ = train_loader(Indices(37), config, CPU)
    shards = []
    for rank in range(world_size):
        world = distributed.World(rank, world_size, rank, torch.device("cpu"), None)
        loader, sampler = train_loader(Indices(37), config, world)
        sampler.set_epoch(3)
        shards.append([x.tolist() for x, _ in loader])
    single.sampler.set_epoch(3)
    batches = [x.tolist() for x, _ in single]
    assert len(batches) == 37 // 8 and all(len(b) == 8 for b in batches)
    for k, batch in enumerate(batches):
        assert sorted(i for shard in shards for i in shard[k]) == sorted(batch)
    assert all(len(shard) == len(batches) and all(len(b) == 8 // world_size for b in shard) for shard in shards)
    with pytest.raises(ValueError, match="global batch of 8 does not split over 3 processes"):
        train_loader(Indices(37), config, distributed.World(0, 3, 0, torch.device("cpu"), None))


def test_augmentation_depends_on_the_example_and_epoch_only(tree):
    """The random crop and flip of an example are the same whichever process or worker loads it."""
    files = copy.copy(load_clothing1m(path=tree).clean_train)
    files.transform = ImageTransform.train(8, 6)
    items = SeededItems(files, seed=derived_seed(0, "augment"))
    items.set_epoch(1)
    first = torch.stack([items[i][0] for i in range(len(items))])
    torch.manual_seed(123)  # the global generator does not matter ...
    assert torch.equal(torch.stack([items[i][0] for i in range(len(items))]), first)
    loader = torch.utils.data.DataLoader(items, batch_size=7, num_workers=2)  # ... nor the worker
    assert torch.equal(torch.cat([x for x, _ in loader]), first)
    items.set_epoch(2)
    assert not torch.equal(torch.stack([items[i][0] for i in range(len(items))]), first)


@pytest.mark.slow  # about 15 s: torchrun starts 2 processes that import torch
def test_two_processes_give_the_parameters_of_one(tree, tmp_path):
    """torchrun, 2 processes, gloo on CPU, global batch 4 (2 per process), 2 epochs (26 SGD steps with
    momentum and weight decay, a learning-rate drop, random crops and flips, forward correction) vs one
    process with the same config: the parameters and BN statistics after the last step, the per-epoch
    losses and the softmax on the training set agree to float32 rounding (rtol 1e-5, atol 1e-6; measured:
    parameters at most 2e-7 apart, BN running variances 1.5e-6, probabilities 1.2e-7). With per-process BN statistics, or augmentation drawn from each worker's
    generator, they differ by ~1 (checked by hand)."""
    config_path = write_config(tmp_path / "c.yaml", tree, {
        "fwd": {"method": "forward", "train_set": "noisy", "augment": True, "save_probs": True, "selection": "last"}})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "pyrobust.experiment.clothing1m", "train", "fwd", "--config", str(config_path),
               "--out-dir", str(tmp_path / "ddp")]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]

    assert main(["train", "fwd", "--config", str(config_path), "--out-dir", str(tmp_path / "one")]) == 0
    one = torch.load(tmp_path / "one" / "fwd.pt", weights_only=True)
    two = torch.load(tmp_path / "ddp" / "fwd.pt", weights_only=True)
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6, msg=key)
    np.testing.assert_allclose(np.load(tmp_path / "ddp" / "fwd.probs.npy"),
                               np.load(tmp_path / "one" / "fwd.probs.npy"), rtol=1e-5, atol=1e-6)
    r1 = json.loads((tmp_path / "one" / "fwd.json").read_text())
    r2 = json.loads((tmp_path / "ddp" / "fwd.json").read_text())
    assert (r1["world_size"], r2["world_size"], r1["steps"], r2["steps"]) == (1, 2, 26, 26)
    for key in ("train_loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(r2[key], r1[key], rtol=1e-5)
    assert r2["best_epoch"] == r1["best_epoch"] and r2["test_accuracy"] == r1["test_accuracy"]


def test_global_batch_norm_is_plain_batch_norm_in_one_process():
    bn = torch.nn.BatchNorm2d(3)
    model = distributed._replace_batch_norm(torch.nn.Sequential(bn), distributed.GlobalBatchNorm)
    assert isinstance(model[0], distributed.GlobalBatchNorm) and model[0].weight is bn.weight
    x = torch.randn(4, 3, 5, 5)
    reference = torch.nn.BatchNorm2d(3)
    torch.testing.assert_close(model(x), reference(x))
    torch.testing.assert_close(model[0].running_var, reference.running_var)
    assert distributed.global_batch_norm(bn, CPU) is bn  # one process: left alone


# ----------------------------------------------------------------------------------------- records, CLI, T_hat


def test_record_checkpoint_and_the_row_8_fine_tuning(tree, tmp_path):
    """A run's record has make_record's keys where they apply, plus Table 3's; #8 starts from #6's kept
    weights (init_from), and a checkpoint of another network is refused naming its file."""
    path = write_config(tmp_path / "c.yaml", tree, {
        "forward_1m": {"row": 6, "method": "forward", "train_set": "noisy", "epochs": 1},
        "ft": {"row": 8, "method": "cross_entropy", "train_set": "clean", "init_from": "forward_1m", "epochs": 1}})
    assert main(["train", "forward_1m", "--config", str(path)]) == 0
    record = json.loads((tmp_path / "out" / "forward_1m.json").read_text())
    for key in ("dataset", "model", "method", "noise", "N", "seed", "test_accuracy", "best_epoch", "epochs",
                "val_loss", "val_accuracy", "train_loss", "selection", "T", "T_hat", "estimation_error",
                "identity_mix", "realised_noise_rate", "sizes", "wall_time_s", "device", "threads", "versions",
                "config"):
        assert key in record, key
    assert (record["dataset"], record["method"], record["noise"], record["N"]) == ("clothing1m", "forward", "real", None)
    assert (record["table3_row"], record["training_set"], record["init"]) == (6, "1M", "scratch")
    assert record["sizes"] == {"train": 52, "val": 4, "test": 3}
    assert record["selection"] == "lowest cross-entropy on the clean validation set"

    assert main(["train", "ft", "--config", str(path)]) == 0
    ft = json.loads((tmp_path / "out" / "ft.json").read_text())
    assert ft["init"] == str(tmp_path / "out" / "forward_1m.pt") and ft["training_set"] == "50k"
    assert ft["config"]["weight_decay"] == 5e-2 and ft["config"]["augment"] is True

    model = build_model("resnet14", NUM_CLASSES)
    load_checkpoint(model, tmp_path / "out" / "forward_1m.pt")
    save_checkpoint(model, tmp_path / "again.pt")
    assert torch.load(tmp_path / "again.pt", weights_only=True).keys() == model.state_dict().keys()
    with pytest.raises(ValueError, match=r"init_checkpoint: .*forward_1m.pt: not a checkpoint of this network"):
        load_checkpoint(build_model("resnet32", NUM_CLASSES), tmp_path / "out" / "forward_1m.pt")
    with pytest.raises(FileNotFoundError, match="init_checkpoint: .*absent.pt does not exist"):
        load_checkpoint(model, tmp_path / "absent.pt")


def test_T_hat_from_the_cross_entropy_networks_softmax(tree, tmp_path, capsys):
    """#4 saves its softmax on the noisy 1M; `estimate` applies a registered estimator; forward_est trains
    with that T_hat, recorded with its error against the clean-subset T."""
    path = write_config(tmp_path / "c.yaml", tree, {
        "ce_1m": {"method": "cross_entropy", "train_set": "noisy", "save_probs": True, "epochs": 1},
        "forward_est_1m": {"method": "forward_est", "train_set": "noisy", "epochs": 1}})
    out = tmp_path / "out"
    assert main(["train", "forward_est_1m", "--config", str(path)]) == 2
    assert "T_hat-percentile.npy does not exist" in capsys.readouterr().err

    assert main(["train", "ce_1m", "--config", str(path)]) == 0
    probs = np.load(out / "ce_1m.probs.npy")
    assert probs.shape == (52, NUM_CLASSES) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert main(["estimate", "ce_1m", "--config", str(path)]) == 0
    T_hat = np.load(out / "T_hat-percentile.npy")
    summary = json.loads((out / "T_hat-percentile.json").read_text())
    assert T_hat.shape == (NUM_CLASSES, NUM_CLASSES) and summary["estimator"] == "percentile"
    np.testing.assert_allclose(summary["T"], expected_T().numpy())
    assert set(summary["estimation_error"]) == {"mae", "max_row_l1"}

    assert main(["train", "forward_est_1m", "--config", str(path)]) == 0
    record = json.loads((out / "forward_est_1m.json").read_text())
    np.testing.assert_allclose(record["T_hat"], T_hat)
    assert record["T_source"] == "estimated (percentile)"
    assert record["estimation_error"] == pytest.approx(summary["estimation_error"])

    data = load_clothing1m(path=tree)
    cj, info = estimate(probs, data.noisy_train.labels, estimator="confident_joint")
    assert cj.shape == (NUM_CLASSES, NUM_CLASSES) and info["estimation_error"] is None
    with pytest.raises(ValueError, match="expected 52 x 14 probabilities"):
        estimate(probs[:10], data.noisy_train.labels)


def test_command_line_errors_are_one_line(tree, tmp_path, capsys):
    path = write_config(tmp_path / "c.yaml", tree, {"a": {"method": "forward"}})
    assert main(["train", "a", "--config", str(path), "--set", "batch_size=1000", "--set", "epochs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train: error: 52 training examples are fewer than one batch of 1000" in err
    assert main(["train", "a", "--config", str(path), "--set", "nope=1"]) == 2
    assert "--set expects key=value" in capsys.readouterr().err
