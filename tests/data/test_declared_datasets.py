"""Data sets declared outside code (PYROBUST_CUSTOM_DATASETS): found by the registry on a lookup miss, in
any process; `fc` takes the width of their features."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from pyrobust.models import build_model
from pyrobust.noise import transition_matrix_for


@pytest.fixture
def declared(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "small.npz", x_train=rng.random((40, 6)).astype(np.float32),
             y_train=np.arange(40) % 3, x_test=rng.random((9, 6)).astype(np.float32), y_test=np.arange(9) % 3)
    (tmp_path / "my.yaml").write_text(
        "custom_datasets:\n  small:\n    format: npz\n    path: small.npz\n    epochs: 3\n"
        "    settings: [{noise: none, N: 0}, {noise: asymmetric, N: 0.2}]\n"
    )
    monkeypatch.setenv("PYROBUST_CUSTOM_DATASETS", str(tmp_path / "my.yaml"))
    yield tmp_path
    from pyrobust.registry import DATASETS

    DATASETS.unregister("small")  # registered on its first lookup: leave no trace for other tests


def test_a_declared_data_set_is_registered_from_the_environment(declared):
    import pyrobust

    assert "small" in pyrobust.list_datasets()
    info = pyrobust.get_dataset("small")
    assert info.num_classes == 3 and info.custom and info.columns == (("none", 0.0), ("asymmetric", 0.2))
    assert info.training["epochs"] == 3 and info.training["optimizer"] == "adagrad"
    data = pyrobust.data.load("small")
    assert tuple(data.x_train.shape) == (40, 6)
    # asymmetric noise of a data set outside the paper: pair flips i -> i+1 (mod C)
    T = transition_matrix_for("small", "asymmetric", 0.2)
    np.testing.assert_allclose(T.numpy(), 0.8 * np.eye(3) + 0.2 * np.roll(np.eye(3), 1, axis=1))


def test_a_fresh_process_learns_of_it_from_the_environment(declared):
    out = subprocess.run([sys.executable, "-m", "pyrobust.cli", "corrupt", "--dataset", "small", "--noise",
                          "asymmetric", "--N", "0.2", "--seed", "0", "--out", str(declared / "s0.npz")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert np.load(declared / "s0.npz")["labels"].shape == (40,)


def test_fc_takes_the_features_width_and_keeps_mnists_784_bit_identical():
    torch.manual_seed(0)
    default = build_model("fc", 10)
    torch.manual_seed(0)
    explicit = build_model("fc", 10, in_features=784)
    for a, b in zip(default.state_dict().values(), explicit.state_dict().values()):
        assert torch.equal(a, b)
    assert build_model("fc", 3, in_features=6)(torch.zeros(2, 6)).shape == (2, 3)
