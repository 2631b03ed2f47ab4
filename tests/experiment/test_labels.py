"""pyrobust.experiment.labels: corrupting the training labels (section 5.1) and the noisy-labels file."""

import os

import numpy as np
import pytest
import torch

from pyrobust.data import Dataset
from pyrobust.experiment.labels import NoisyLabels, corrupt_labels


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


def test_noisy_labels_save_is_atomic(small, tmp_path, monkeypatch):
    path = tmp_path / "n.npz"
    corrupt_labels(small, "symmetric", 0.2, 7).save(path)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        corrupt_labels(small, "symmetric", 0.2, 8).save(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["n.npz"]


def test_corrupt_labels_rejects_an_unknown_noise(small):
    with pytest.raises(ValueError, match="unknown noise 'pair'"):
        corrupt_labels(small, "pair", 0.2, 0)


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


def test_noisy_labels_load_names_the_file_whatever_it_holds(small, tmp_path):
    """Another file type, a truncated or damaged archive, a directory: a ValueError "<path>: <problem>",
    never numpy's or zipfile's own exception."""
    good = tmp_path / "n.npz"
    corrupt_labels(small, "symmetric", 0.2, 7).save(good)
    data = good.read_bytes()
    np.save(tmp_path / "array.npy", np.zeros(3))
    np.savez(tmp_path / "scalars.npz", labels=np.zeros(3, dtype=np.int64), T=np.eye(2), dataset=np.array("mnist5k"),
             noise=np.array("none"), N=np.zeros(2), seed=np.array(0))
    cases = {
        "half.npz": (data[: len(data) // 2], "truncated"),
        "damaged.npz": (data[:200] + bytes(len(data) - 200), ""),  # the archive's first entry overwritten
        "record.json": (b'{"labels": [1]}', "not an .npz archive"),
        "empty.npz": (b"", "not an .npz archive"),
        "array.npy": (None, "a .npy array"),
        "scalars.npz": (None, "not a noisy-labels file"),  # N is not a scalar
    }
    for name, (content, problem) in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError) as info:
            NoisyLabels.load(tmp_path / name)
        assert str(info.value).startswith(f"{tmp_path / name}: ") and problem in str(info.value), str(info.value)
    with pytest.raises(ValueError, match="is a directory"):
        NoisyLabels.load(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        NoisyLabels.load(tmp_path / "absent.npz")
    assert str(info.value).startswith(f"{tmp_path / 'absent.npz'}: no such file")


def test_noisy_labels_load_names_the_file_of_a_bad_T(small, tmp_path):
    noisy = corrupt_labels(small, "symmetric", 0.2, 7)
    NoisyLabels(**{**noisy.__dict__, "T": noisy.T * 2}).save(tmp_path / "n.npz")
    with pytest.raises(ValueError, match=r"n.npz: T is not row-stochastic"):
        NoisyLabels.load(tmp_path / "n.npz")
