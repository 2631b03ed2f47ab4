"""Human noise as a noise setting: `pyrobust corrupt --noise human-worst --N 0` on a tiny CIFAR and a CIFAR-N
label file written in the published format (a torch.save zip of a dict of NumPy arrays, NumPy 1 pickles).

The labels file holds the human labels and, as their true T, the empirical T of the (clean, human) pairs;
N is 0 (a placeholder); every seed gets the same labels. `pyrobust train` takes them like any other noisy
labels (forward with that T).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from datafiles import py2_pickle, tar_gz, torch_save_bytes

from pyrobust import catalog
from pyrobust.cli import main
from pyrobust.cli.parser import build_parser
from pyrobust.data import cifar_n
from pyrobust.experiment.labels import NoisyLabels, corrupt_labels
from pyrobust.registry import get_dataset


def run(*argv):
    return main([str(a) for a in argv])


def write_cifar(root, name, y_train, n_test=3, seed=0):
    """A tiny CIFAR tarball in the official layout (Python 2 pickles) with the given training labels, in
    ``<root>/<name>/`` where `pyrobust fetch` puts it."""
    rng = np.random.default_rng(seed)
    y_train = np.asarray(y_train)

    def batch(labels, what):
        content = {"batch_label": what, "data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8),
                   "filenames": [f"img{i}.png" for i in range(len(labels))]}
        if name == "cifar10":
            content["labels"] = [int(y) for y in labels]
        else:
            content.update(fine_labels=[int(y) for y in labels], coarse_labels=[int(y) // 5 for y in labels])
        return py2_pickle(content)

    if name == "cifar10":
        folder, archive = "cifar-10-batches-py", "cifar-10-python.tar.gz"
        members = {f"{folder}/data_batch_{i + 1}": batch(part, f"batch {i + 1}")
                   for i, part in enumerate(np.array_split(y_train, 5))}
        members[f"{folder}/test_batch"] = batch(rng.integers(0, 10, n_test), "test")
        members[f"{folder}/batches.meta"] = py2_pickle({"label_names": [f"class{i}" for i in range(10)]})
    else:
        folder, archive = "cifar-100-python", "cifar-100-python.tar.gz"
        members = {f"{folder}/train": batch(y_train, "train"), f"{folder}/test": batch(rng.integers(0, 100, n_test), "test"),
                   f"{folder}/meta": py2_pickle({"fine_label_names": [f"f{i}" for i in range(100)],
                                                  "coarse_label_names": [f"c{i}" for i in range(20)]})}
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / archive).write_bytes(tar_gz(members))


def human_labels(clean, C, rate, seed):
    rng = np.random.default_rng(seed)
    flip = rng.random(len(clean)) < rate
    return np.where(flip, (clean + rng.integers(1, C, len(clean))) % C, clean).astype(np.int64)


def write_cifar_n(root, dataset, labels):
    """The CIFAR-N file where `pyrobust fetch cifar10n` puts it, written as the published one."""
    files, _ = cifar_n.CIFAR_N[dataset]
    path = root / files / catalog.LABEL_FILES[files][0].filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(torch_save_bytes(labels, numpy1=True))
    return path


def counted_T(clean, noisy, C):
    T = np.zeros((C, C))
    np.add.at(T, (clean, noisy), 1)
    return T / T.sum(1, keepdims=True)


@pytest.fixture
def cifar10_root(tmp_path):
    """CIFAR-10 with 20 training images (every class twice) and its CIFAR-N labels."""
    clean = np.tile(np.arange(10), 2).astype(np.int64)
    labels = {"clean_label": clean}
    for i, key in enumerate(("aggre_label", "random_label1", "random_label2", "random_label3", "worse_label")):
        labels[key] = human_labels(clean, 10, 0.1 + 0.1 * i, seed=i)
    write_cifar(tmp_path, "cifar10", clean)
    write_cifar_n(tmp_path, "cifar10", labels)
    return tmp_path, labels


def test_the_human_settings_are_the_catalogues_noise_kinds():
    # each setting names a label set of its data set's published file, with that data set's classes
    for setting, (dataset, _, key) in catalog.HUMAN_NOISE.items():
        assert key in cifar_n._REQUIRED[dataset] and key != "clean_label", setting
        assert cifar_n._KEYS[dataset][key] == get_dataset(dataset).num_classes
        assert cifar_n.HUMAN_NOISE_SETTINGS[setting] == (dataset, key)
    assert set(catalog.HUMAN_NOISE) <= set(catalog.NOISE_KINDS)
    assert {files for files, _ in cifar_n.CIFAR_N.values()} == set(catalog.LABEL_FILES)
    import pyrobust.data

    assert pyrobust.data.load_cifar_n_labels is cifar_n.load_cifar_n_labels  # the name
    assert pyrobust.data.human_noise is cifar_n.human_noise
    # `pyrobust fetch cifar10n` is a name the command accepts, beside the data sets
    assert build_parser().parse_args(["fetch", "cifar10n"]).dataset == "cifar10n"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fetch", "cifar10m"])


@pytest.mark.parametrize("setting,key", [("human-worst", "worse_label"), ("human-aggregate", "aggre_label"),
                                         ("human-random2", "random_label2")])
def test_corrupt_writes_the_human_labels_and_their_empirical_T(cifar10_root, tmp_path, capsys, setting, key):
    root, labels = cifar10_root
    outs = [tmp_path / "out" / f"seed{s}.npz" for s in (0, 1)]
    assert run("corrupt", "--dataset", "cifar10", "--noise", setting, "--N", 0, "--seed", 0, 1,
               "--out", *outs, "--data-root", root) == 0
    for seed, out in zip((0, 1), outs):
        noisy = NoisyLabels.load(out)
        assert (noisy.dataset, noisy.noise, noisy.N, noisy.seed) == ("cifar10", setting, 0.0, seed)
        np.testing.assert_array_equal(noisy.labels, labels[key])  # the human labels, the same for every seed
        np.testing.assert_allclose(noisy.T, counted_T(labels["clean_label"], labels[key], 10))
    rate = np.mean(labels[key] != labels["clean_label"])
    assert f"{100 * rate:.1f}% flipped" in capsys.readouterr().out


def test_cifar100_human_noisy(tmp_path):
    clean = np.arange(100, dtype=np.int64)
    noisy = human_labels(clean, 100, 0.4, seed=3)
    write_cifar(tmp_path, "cifar100", clean)
    write_cifar_n(tmp_path, "cifar100", {"clean_label": clean, "noisy_label": noisy,
                                         "clean_coarse_label": (clean // 5).tolist(),
                                         "noisy_coarse_label": (noisy // 5).tolist()})
    out = tmp_path / "seed0.npz"
    assert run("corrupt", "--dataset", "cifar100", "--noise", "human-noisy", "--N", 0, "--seed", 0, "--out", out,
               "--data-root", tmp_path) == 0
    written = NoisyLabels.load(out)
    np.testing.assert_array_equal(written.labels, noisy)
    np.testing.assert_allclose(written.T, counted_T(clean, noisy, 100))


def test_human_noise_errors_name_the_problem(cifar10_root, tmp_path, capsys):
    root, labels = cifar10_root
    out = tmp_path / "seed0.npz"

    def error(*argv):
        assert run("corrupt", "--seed", 0, "--out", out, "--data-root", root, *argv) == 2
        return capsys.readouterr().err

    assert "noise 'human-worst' takes the human labels as they are: N must be 0" in error(
        "--dataset", "cifar10", "--noise", "human-worst", "--N", 0.4)
    write_cifar(root, "cifar100", np.arange(100))
    assert "noise 'human-worst' is a human label set of cifar10, not of cifar100 (whose human label sets are: " \
           "human-noisy)" in error("--dataset", "cifar100", "--noise", "human-worst", "--N", 0)
    # the CIFAR-100 file is absent: the message says where to put it and how to fetch it
    message = error("--dataset", "cifar100", "--noise", "human-noisy", "--N", 0)
    assert "CIFAR-100_human.pt" in message and "pyrobust fetch cifar100n" in message
    # labels of another order (or another training set): refused, not silently misaligned
    write_cifar(root, "cifar10", np.roll(labels["clean_label"], 1))
    assert "its training labels are not CIFAR-N's clean labels of cifar10" in error(
        "--dataset", "cifar10", "--noise", "human-aggregate", "--N", 0)
    # a file of another length
    write_cifar(root, "cifar10", np.tile(np.arange(10), 3))
    assert "has 20 labels, expected 30" in error("--dataset", "cifar10", "--noise", "human-aggregate", "--N", 0)
    assert not out.exists()


def test_human_noise_is_not_a_T_to_inject():
    from pyrobust.noise import transition_matrix_for

    with pytest.raises(ValueError, match="human labels, not a T to inject"):
        transition_matrix_for("cifar10", "human-worst", 0.0)


def test_corrupt_labels_of_a_loaded_data_set(cifar10_root):
    import pyrobust.data

    root, labels = cifar10_root
    data = pyrobust.data.load("cifar10", root)
    noisy = corrupt_labels(data, "human-random1", 0, seed=4, data_root=root)
    np.testing.assert_array_equal(noisy.labels, labels["random_label1"])
    assert noisy.seed == 4 and noisy.N == 0.0


@pytest.mark.slow
def test_train_takes_human_labels_with_their_true_T(cifar10_root, tmp_path):
    """forward with the empirical T of the human labels: the record names the setting and its real rate."""
    root, labels = cifar10_root
    noisy = tmp_path / "seed0.npz"
    assert run("corrupt", "--dataset", "cifar10", "--noise", "human-worst", "--N", 0, "--seed", 0, "--out", noisy,
               "--data-root", root) == 0
    out = tmp_path / "runs"
    assert run("train", "--method", "forward", "--noisy-labels", noisy, "--seed", 0, "--out-dir", out,
               "--model", "resnet14", "--epochs", 1, "--device", "cpu", "--threads", 1, "--data-root", root,
               "--set", "batch_size=8", "--set", "augment=false") == 0
    record = json.loads((out / "forward.json").read_text())
    assert (record["dataset"], record["noise"], record["N"]) == ("cifar10", "human-worst", 0.0)
    assert record["realised_noise_rate"] == pytest.approx(np.mean(labels["worse_label"] != labels["clean_label"]))
    np.testing.assert_allclose(record["T"], counted_T(labels["clean_label"], labels["worse_label"], 10))
