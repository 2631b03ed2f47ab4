"""CIFAR-10/100 from the official pickle batches: layouts, mean subtraction, and untrusted-file checks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from datafiles import Exploit, cifar_batches, py2_pickle, tar_gz

import pyrobust.data as data

ARCHIVE = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def place(root, name, files, layout):
    """Put the batch files where a user, fetch or torchvision would: tarball or extracted folder."""
    if layout == "tarball":
        (root / name).mkdir(parents=True)
        (root / name / ARCHIVE[name]).write_bytes(tar_gz(files))
    else:
        base = root / name if layout == "folder" else root  # torchvision: <root>/cifar-10-batches-py
        for member, content in files.items():
            (base / member).parent.mkdir(parents=True, exist_ok=True)
            (base / member).write_bytes(content)


def expected_images(u8: np.ndarray, train_u8: np.ndarray) -> np.ndarray:
    mean = (train_u8 / 255.0).mean(axis=0)
    return (u8 / 255.0 - mean).reshape(-1, 3, 32, 32)


@pytest.mark.parametrize("layout", ["tarball", "folder", "torchvision"])
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_load_round_trip(tmp_path, name, layout):
    files, arrays = cifar_batches(name, seed=1)
    place(tmp_path, name, files, layout)
    ds = data.load(name, tmp_path)

    assert ds.num_classes == (10 if name == "cifar10" else 100)
    assert ds.x_train.dtype == torch.float32 and ds.x_train.shape == (len(arrays["y_train"]), 3, 32, 32)
    np.testing.assert_allclose(ds.x_train.numpy(), expected_images(arrays["x_train"], arrays["x_train"]), atol=1e-6)
    np.testing.assert_allclose(ds.x_test.numpy(), expected_images(arrays["x_test"], arrays["x_train"]), atol=1e-6)
    np.testing.assert_allclose(ds.x_train.mean(0).numpy(), 0.0, atol=1e-6)  # per-pixel mean subtracted
    assert ds.y_train.dtype == torch.int64
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["y_train"])
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["y_test"])
    if name == "cifar100":
        np.testing.assert_array_equal(ds.coarse_train.numpy(), arrays["coarse_train"])
        np.testing.assert_array_equal(ds.coarse_test.numpy(), arrays["coarse_test"])
    else:
        assert ds.coarse_train is None and ds.coarse_test is None


def test_channels_are_the_three_1024_byte_planes(tmp_path):
    files, _ = cifar_batches("cifar10")
    for member in [m for m in files if "_batch" in m]:
        batch = pickle.loads(files[member], encoding="latin1")
        batch["data"][:] = 0
        if member.endswith("data_batch_1"):
            batch["data"][0, 1024 + 32 * 5 + 7] = 255  # first image: green, row 5, column 7
        files[member] = py2_pickle(batch)
    place(tmp_path, "cifar10", files, "folder")
    x = data.load("cifar10", tmp_path).x_train  # 10 train images: the mean there is 255 / 10 / 255
    assert (x[0] != 0).nonzero().tolist() == [[1, 5, 7]]
    assert x[0, 1, 5, 7].item() == pytest.approx(0.9) and x[1:, 1, 5, 7].tolist() == pytest.approx([-0.1] * 9)


def test_python3_pickles_are_accepted(tmp_path):
    files, arrays = cifar_batches("cifar10", dump=lambda obj: pickle.dumps(obj, protocol=4))
    place(tmp_path, "cifar10", files, "folder")
    np.testing.assert_array_equal(data.load("cifar10", tmp_path).y_train.numpy(), arrays["y_train"])


def test_malicious_pickle_is_rejected_without_running(tmp_path):
    marker = tmp_path / "pwned"
    files, _ = cifar_batches("cifar10")
    files["cifar-10-batches-py/data_batch_3"] = pickle.dumps({"data": Exploit(f"touch {marker}")}, protocol=2)
    place(tmp_path, "cifar10", files, "tarball")
    with pytest.raises(data.DataFormatError, match=r"data_batch_3: .*forbidden global (posix|os)\.system"):
        data.load("cifar10", tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.update(data=b["data"][:, :3000]), "'data' must be a uint8 N x 3072 array"),
        (lambda b: b.update(data=b["data"].astype(np.int64)), "'data' must be a uint8 N x 3072 array"),
        (lambda b: b.pop("data"), "'data' must be a uint8 N x 3072 array, got NoneType"),
        (lambda b: b.update(labels=b["labels"][:-1]), "'labels' must hold 2 integers"),
        (lambda b: b.update(labels=["cat", "dog"]), "'labels' must hold 2 integers"),
        (lambda b: b.update(labels=[3, 10]), r"'labels' has values outside \[0, 10\)"),
        (lambda b: b.pop("labels"), "no valid 'labels'"),
    ],
)
def test_wrong_batch_contents_name_the_file(tmp_path, change, message):
    files, _ = cifar_batches("cifar10")
    batch = pickle.loads(files["cifar-10-batches-py/data_batch_2"], encoding="latin1")
    change(batch)
    files["cifar-10-batches-py/data_batch_2"] = py2_pickle(batch)
    place(tmp_path, "cifar10", files, "folder")
    with pytest.raises(data.DataFormatError, match=message) as err:
        data.load("cifar10", tmp_path)
    assert "cifar-10-batches-py/data_batch_2" in str(err.value)


def test_not_a_dict_and_not_a_pickle(tmp_path):
    files, _ = cifar_batches("cifar100")
    files["cifar-100-python/test"] = py2_pickle([1, 2, 3])
    place(tmp_path, "cifar100", files, "folder")
    with pytest.raises(data.DataFormatError, match="cifar-100-python/test: expected a pickled dict, got list"):
        data.load("cifar100", tmp_path)
    (tmp_path / "cifar100" / "cifar-100-python" / "test").write_bytes(b"<html>Not found</html>")
    with pytest.raises(data.DataFormatError, match="cifar-100-python/test: not a valid pickle"):
        data.load("cifar100", tmp_path)


def test_coarse_labels_are_checked(tmp_path):
    files, _ = cifar_batches("cifar100")
    batch = pickle.loads(files["cifar-100-python/train"], encoding="latin1")
    batch["coarse_labels"][0] = 20
    files["cifar-100-python/train"] = py2_pickle(batch)
    place(tmp_path, "cifar100", files, "tarball")
    with pytest.raises(data.DataFormatError, match=r"train: 'coarse_labels' has values outside \[0, 20\)"):
        data.load("cifar100", tmp_path)


def test_bad_tarballs_name_the_file(tmp_path):
    files, _ = cifar_batches("cifar10")
    archive = tmp_path / "cifar10" / ARCHIVE["cifar10"]
    place(tmp_path, "cifar10", {k: v for k, v in files.items() if not k.endswith("test_batch")}, "tarball")
    with pytest.raises(data.DataFormatError, match="missing cifar-10-batches-py/test_batch") as err:
        data.load("cifar10", tmp_path)
    assert str(archive) in str(err.value)
    archive.write_bytes(tar_gz(files)[:-3000])  # truncated download placed by hand
    with pytest.raises(data.DataFormatError, match="not a readable .tar.gz") as err:
        data.load("cifar10", tmp_path)
    assert str(archive) in str(err.value)


def test_missing_dataset_names_the_archive_and_the_root(tmp_path):
    with pytest.raises(data.DatasetNotAvailable) as err:
        data.load("cifar100", tmp_path)
    message = str(err.value)
    assert "cifar-100-python.tar.gz" in message and str(tmp_path / "cifar100") in message
