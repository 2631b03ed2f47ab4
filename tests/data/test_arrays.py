"""Your own data: .npz, .npy folders, CSV and image folders, their checks, and their registration."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pyrobust
import pyrobust.data as data
from pyrobust.data.arrays import image_folder, load_arrays, read_num_classes, register_arrays_dataset
from pyrobust.registry import DATASETS


def arrays(seed=0, n=30, m=8, d=5, C=4, dtype=np.float32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_clean = np.arange(n) % C
    flips = rng.random(n) < 0.3
    return {
        "x_train": rng.random((n, d)).astype(dtype) if dtype != np.uint8 else rng.integers(0, 256, (n, d), np.uint8),
        "y_train": np.where(flips, (y_clean + 1) % C, y_clean),
        "x_test": rng.random((m, d)).astype(dtype) if dtype != np.uint8 else rng.integers(0, 256, (m, d), np.uint8),
        "y_test": rng.integers(0, C, m),
        "y_train_clean": y_clean,
    }


def npz(path: Path, **content) -> Path:
    np.savez(path, **content)
    return path


def counts_T(clean, noisy, C) -> np.ndarray:
    counts = np.zeros((C, C))
    np.add.at(counts, (clean, noisy), 1)
    return counts / counts.sum(1, keepdims=True)


# --- .npz ---------------------------------------------------------------------------------------------


def test_npz_round_trip_with_clean_labels(tmp_path):
    a = arrays()
    ds = load_arrays(npz(tmp_path / "mine.npz", **a))
    assert isinstance(ds, data.Dataset) and ds.name == "mine" and ds.num_classes == 4
    assert ds.x_train.dtype == torch.float32 and ds.x_train.shape == (30, 5)
    np.testing.assert_array_equal(ds.x_test.numpy(), a["x_test"])
    assert ds.y_train.dtype == torch.int64
    np.testing.assert_array_equal(ds.y_train.numpy(), a["y_train"])
    np.testing.assert_array_equal(ds.y_train_clean.numpy(), a["y_train_clean"])
    assert ds.clean_indices is None
    np.testing.assert_allclose(ds.transition_from_clean().numpy(), counts_T(a["y_train_clean"], a["y_train"], 4))


def test_npz_with_a_clean_subset(tmp_path):
    a = arrays()
    clean = a.pop("y_train_clean")
    indices = np.array([0, 1, 2, 3, 10, 11, 29])
    ds = load_arrays(npz(tmp_path / "d.npz", **a, clean_indices=indices, clean_labels=clean[indices]),
                     name="subset")
    assert ds.name == "subset" and ds.y_train_clean is None
    np.testing.assert_array_equal(ds.clean_indices.numpy(), indices)
    idx, labels = ds.trusted_labels()
    np.testing.assert_array_equal(labels.numpy(), clean[indices])
    np.testing.assert_allclose(ds.transition_from_clean().numpy(),
                               counts_T(clean[indices], a["y_train"][indices], 4))


def test_without_trusted_labels(tmp_path):
    a = arrays()
    del a["y_train_clean"]
    ds = load_arrays(npz(tmp_path / "d.npz", **a))
    assert ds.trusted_labels() is None and ds.transition_from_clean() is None


def test_uint8_is_scaled_like_mnist_and_images_come_channels_first(tmp_path):
    rng = np.random.default_rng(1)
    y = np.arange(6) % 3
    hwc = rng.integers(0, 256, (6, 8, 7, 3), dtype=np.uint8)
    ds = load_arrays(npz(tmp_path / "img.npz", x_train=hwc, y_train=y, x_test=hwc[:2], y_test=y[:2]))
    assert ds.x_train.dtype == torch.float32 and ds.x_train.shape == (6, 3, 8, 7)
    np.testing.assert_allclose(ds.x_train.numpy(), hwc.transpose(0, 3, 1, 2) / 255.0, atol=1e-7)
    assert 0 <= ds.x_train.min() and ds.x_train.max() <= 1

    gray = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    ds = load_arrays(npz(tmp_path / "gray.npz", x_train=gray, y_train=y, x_test=gray[:2], y_test=y[:2]))
    assert ds.x_train.shape == (6, 1, 28, 28)
    flat = load_arrays(tmp_path / "gray.npz", flatten=True)
    assert flat.x_train.shape == (6, 784)
    np.testing.assert_allclose(flat.x_train.numpy(), gray.reshape(6, 784) / 255.0, atol=1e-7)

    chw = rng.random((6, 3, 4, 4)).astype(np.float64)  # already channels first: kept
    ds = load_arrays(npz(tmp_path / "chw.npz", x_train=chw, y_train=y, x_test=chw[:2], y_test=y[:2]))
    assert ds.x_train.shape == (6, 3, 4, 4) and ds.x_train.dtype == torch.float32


def test_integer_features_are_kept_as_ids(tmp_path):
    ids = np.arange(40, dtype=np.int32).reshape(10, 4)
    y = np.arange(10) % 2
    ds = load_arrays(npz(tmp_path / "ids.npz", x_train=ids, y_train=y, x_test=ids[:3], y_test=y[:3]))
    assert ds.x_train.dtype == torch.int64 and torch.equal(ds.x_train, torch.from_numpy(ids).long())


def test_num_classes_inferred_from_every_label_array_or_given(tmp_path):
    a = arrays(C=4)
    a["y_test"][0] = 6  # the largest label anywhere
    path = npz(tmp_path / "d.npz", **a)
    assert load_arrays(path).num_classes == 7 and read_num_classes(path) == 7
    assert load_arrays(path, num_classes=10).num_classes == 10
    with pytest.raises(data.DataFormatError, match=r"d.npz \[y_test\]: y_test holds label 6, outside \[0, 5\)"):
        load_arrays(path, num_classes=5)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        load_arrays(path, num_classes=1)


# --- untrusted files ----------------------------------------------------------------------------------


def bad_npz(tmp_path, **changes):
    a = arrays()
    a.update(changes)
    return npz(tmp_path / "bad.npz", **{k: v for k, v in a.items() if v is not None})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(x_test=None), r"bad.npz: missing array\(s\) x_test"),
        (dict(y_clean=np.zeros(30, int)), r"bad.npz: unexpected array\(s\) y_clean"),
        (dict(x_train=np.zeros(30)), r"\[x_train\]: x_train must be n x d or image-shaped"),
        (dict(y_train=np.zeros(29, int)), r"\[y_train\]: y_train has 29 entries, expected 30"),
        (dict(y_train=np.zeros((30, 1), int)), r"\[y_train\]: y_train must be a 1-D array of integer"),
        (dict(y_train=np.zeros(30)), r"\[y_train\]: y_train must be a 1-D array of integer class indices, got float64"),
        (dict(y_test=-np.ones(8, int)), r"\[y_test\]: y_test holds the negative label -1"),
        (dict(x_test=np.zeros((8, 6), np.float32)), r"\[x_test\]: x_test has examples of shape \(6,\)"),
        (dict(x_train=np.full((30, 5), np.nan, np.float32)), r"\[x_train\]: x_train holds NaN or infinite"),
        (dict(x_train=np.zeros((30, 5), bool)), r"\[x_train\]: x_train must hold numbers"),
        (dict(x_train=np.zeros((0, 5), np.float32), y_train=np.zeros(0, int), y_train_clean=np.zeros(0, int)),
         r"\[x_train\]: x_train is empty"),
        (dict(y_train_clean=np.zeros(31, int)), r"\[y_train_clean\]: y_train_clean has 31 entries, expected 30"),
        (dict(clean_indices=np.array([1, 2])), r"bad.npz \[y_train_clean\]: give y_train_clean or clean_indices"),
        (dict(y_train_clean=None, clean_indices=np.array([1, 2])), "clean_indices and clean_labels go together"),
        (dict(y_train_clean=None, clean_indices=np.array([1, 30]), clean_labels=np.array([0, 1])),
         r"\[clean_indices\]: clean_indices holds 30, but the training set has 30 examples"),
        (dict(y_train_clean=None, clean_indices=np.array([1, 1]), clean_labels=np.array([0, 1])),
         "clean_indices repeats a training example"),
    ],
    ids=["missing", "unknown", "1-D x", "length", "2-D y", "float y", "negative", "feature shape", "nan",
         "bool", "empty", "clean length", "both clean forms", "indices alone", "index range", "repeated index"],
)
def test_bad_arrays_are_named(tmp_path, changes, message):
    with pytest.raises(data.DataFormatError, match=message):
        load_arrays(bad_npz(tmp_path, **changes))


def test_pickled_object_arrays_are_refused(tmp_path):
    a = arrays()
    a["y_train"] = np.array([[1], "x"] * 15, dtype=object)
    path = npz(tmp_path / "obj.npz", **a)
    with pytest.raises(data.DataFormatError, match=r"obj.npz: not a readable .npz of numeric arrays .*pickle"):
        load_arrays(path)


def test_truncated_and_foreign_files(tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays(n=3000))
    (tmp_path / "cut.npz").write_bytes(buffer.getvalue()[:-5000])
    with pytest.raises(data.DataFormatError, match="cut.npz: not a readable .npz"):
        load_arrays(tmp_path / "cut.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(data.DataFormatError, match="single.npz: not an .npz archive"):
        load_arrays(tmp_path / "single.npz")
    with zipfile.ZipFile(tmp_path / "zip.npz", "w") as z:
        z.writestr("x_train.npy", b"not an array")
    with pytest.raises(data.DataFormatError, match="zip.npz"):
        load_arrays(tmp_path / "zip.npz")
    (tmp_path / "text.json").write_text("{}")
    with pytest.raises(data.DataFormatError, match=r"text.json: expected an .npz or .csv file, or a folder"):
        load_arrays(tmp_path / "text.json")
    with pytest.raises(data.DatasetNotAvailable, match="nothere.npz: no such file"):
        load_arrays(tmp_path / "nothere.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataFormatError, match="empty: a folder of your own data holds x_train.npy"):
        load_arrays(tmp_path / "empty")


# --- a folder of .npy files ---------------------------------------------------------------------------


def test_npy_folder(tmp_path):
    a = arrays(dtype=np.uint8)
    folder = tmp_path / "npys"
    folder.mkdir()
    for key, value in a.items():
        np.save(folder / f"{key}.npy", value)
    ds = load_arrays(folder)
    assert ds.name == "npys" and ds.x_train.dtype == torch.float32 and ds.x_train.max() <= 1
    np.testing.assert_allclose(ds.x_train.numpy(), a["x_train"] / 255, atol=1e-7)
    np.testing.assert_array_equal(ds.y_train_clean.numpy(), a["y_train_clean"])
    assert read_num_classes(folder) == 4

    np.save(folder / "y_test.npy", a["y_test"][:-1])
    with pytest.raises(data.DataFormatError, match=r"npys/y_test.npy: y_test has 7 entries, expected 8"):
        load_arrays(folder)
    (folder / "y_test.npy").write_bytes((folder / "x_train.npy").read_bytes()[:40])
    with pytest.raises(data.DataFormatError, match=r"npys/y_test.npy: not a readable .npy"):
        load_arrays(folder)
    np.save(folder / "y_test.npy", np.array([{"a": 1}] * 8, dtype=object), allow_pickle=True)
    with pytest.raises(data.DataFormatError, match=r"npys/y_test.npy: not a readable .npy.*allow_pickle"):
        load_arrays(folder)


# --- CSV ----------------------------------------------------------------------------------------------

CSV = """split,label,clean_label,f0,f1,f2
train,3,3,0.5,1.0,-2
train,1,,0.25,0.0,1e-3
train,0,2,1,2,3
test,2,,0.9,0.4,0.2
train,2,2,0,0,0

test,1,,1,1,1
"""


def test_one_csv_with_a_split_column(tmp_path):
    (tmp_path / "table.csv").write_text(CSV)
    ds = load_arrays(tmp_path / "table.csv")
    assert ds.name == "table" and ds.num_classes == 4
    np.testing.assert_array_equal(ds.x_train.numpy(), np.array([[0.5, 1, -2], [0.25, 0, 1e-3], [1, 2, 3], [0, 0, 0]],
                                                                np.float32))
    np.testing.assert_array_equal(ds.y_train.numpy(), [3, 1, 0, 2])
    np.testing.assert_array_equal(ds.y_test.numpy(), [2, 1])
    np.testing.assert_array_equal(ds.x_test.numpy(), np.array([[0.9, 0.4, 0.2], [1, 1, 1]], np.float32))
    np.testing.assert_array_equal(ds.clean_indices.numpy(), [0, 2, 3])  # rows with a clean label
    np.testing.assert_array_equal(ds.clean_labels.numpy(), [3, 2, 2])

    full = CSV.replace("train,1,,", "train,1,1,")
    (tmp_path / "full.csv").write_text(full)
    np.testing.assert_array_equal(load_arrays(tmp_path / "full.csv").y_train_clean.numpy(), [3, 1, 2, 2])


def test_train_and_test_csv_in_a_folder(tmp_path):
    folder = tmp_path / "csvs"
    folder.mkdir()
    (folder / "train.csv").write_text("label,a,b\n0,1,2\n1,3,4\n1,5,6\n")
    (folder / "test.csv").write_text("label,a,b\n0,7,8\n")
    ds = load_arrays(folder)
    assert ds.x_train.shape == (3, 2) and ds.num_classes == 2 and ds.trusted_labels() is None
    (folder / "test.csv").write_text("label,b,a\n0,7,8\n")
    with pytest.raises(data.DataFormatError, match=r"test.csv: its columns \['label', 'b', 'a'\] differ"):
        load_arrays(folder)
    (folder / "test.csv").unlink()
    with pytest.raises(data.DataFormatError, match="csvs: test.csv is missing"):
        load_arrays(folder)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label,f0\n1,2\n", "no 'split' column"),
        ("split,label,f0\ntrain,1,2\nvalid,0,1\n", "line 3: split 'valid' is neither 'train' nor 'test'"),
        ("split,label,f0\ntrain,1,2\ntrain,0,x\ntest,0,1\n", "line 3: column 'f0' is not a number"),
        ("split,label,f0\ntrain,1,2\ntrain,0\ntest,0,1\n", "line 3: 2 fields, the header has 3"),
        ("split,label,f0\ntrain,one,2\ntest,0,1\n", "line 2: label 'one' is not an integer"),
        ("split,label,clean_label,f0\ntrain,1,1,2\ntest,0,1,1\n", "line 3: a test row has a clean_label"),
        ("split,label,f0\ntrain,1,2\n", "no test rows"),
        ("split,label\ntrain,1\ntest,0\n", "no feature column"),
        ("split,f0\ntrain,1\ntest,0\n", "no 'label' column"),
        ("split,label,f0\ntrain,1,2\ntest,-1,1\n", "y_test holds the negative label -1"),
        ("", "empty"),
        ("split,label,f0,f0\ntrain,1,2,3\n", "repeated column names"),
    ],
    ids=["no split", "split value", "not a number", "fields", "label", "test clean", "no test", "no feature",
         "no label", "negative", "empty", "repeated"],
)
def test_bad_csv_is_named_with_the_line(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(data.DataFormatError, match=f"bad.csv.*{message}"):
        load_arrays(tmp_path / "bad.csv")


# --- image folders ------------------------------------------------------------------------------------


def image_tree(root: Path, mode="RGB", size=(6, 5), flat_train=(), classes=("cat", "dog", "emu")) -> dict:
    """train/<class>/<i>.png and test/<class>/<i>.png, each image a distinct uniform colour."""
    made = {"train": [], "test": []}
    value = 0
    for split, per_class in (("train", 3), ("test", 1)):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                value += 7
                fill = value if mode == "L" else (value, 255 - value, c * 50)
                Image.new(mode, size, fill).save(root / split / name / f"{i}.png")
                made[split].append((f"{name}/{i}.png", c, fill))
    for name in flat_train:
        Image.new(mode, size, 0).save(root / "train" / name)
        made["train"].append((name, None, 0))
    return made


def test_image_folder_without_noisy_labels(tmp_path):
    made = image_tree(tmp_path / "pics")
    (tmp_path / "pics" / "train" / "cat" / "notes.txt").write_text("not an image")
    ds = load_arrays(tmp_path / "pics")
    assert ds.x_train.shape == (9, 3, 5, 6) and ds.x_test.shape == (3, 3, 5, 6) and ds.num_classes == 3
    np.testing.assert_array_equal(ds.y_train.numpy(), [c for _, c, _ in made["train"]])
    np.testing.assert_allclose(ds.x_train[4, :, 0, 0].numpy(), np.array(made["train"][4][2]) / 255, atol=1e-6)
    assert ds.trusted_labels() is None


def test_image_folder_with_a_noisy_label_csv(tmp_path):
    made = image_tree(tmp_path / "pics")
    noisy = {f: (c + 1) % 3 if i % 2 else c for i, (f, c, _) in enumerate(made["train"])}
    names = ("cat", "dog", "emu")
    rows = [f"{f},{names[label] if i % 3 else label}" for i, (f, label) in enumerate(noisy.items())]
    (tmp_path / "pics" / "noisy_labels.csv").write_text("file,label\n" + "\n".join(reversed(rows)) + "\n")
    ds = load_arrays(tmp_path / "pics")
    np.testing.assert_array_equal(ds.y_train.numpy(), list(noisy.values()))
    np.testing.assert_array_equal(ds.y_train_clean.numpy(), [c for _, c, _ in made["train"]])
    T = ds.transition_from_clean()
    assert T.shape == (3, 3) and torch.allclose(T.sum(1), torch.ones(3, dtype=torch.float64))

    lazy = image_folder(tmp_path / "pics")
    assert lazy.classes == names and isinstance(lazy.train, torch.utils.data.Dataset)
    x, y = lazy.train[1]
    assert x.shape == (3, 5, 6) and y.item() == noisy["cat/1.png"]
    np.testing.assert_array_equal(lazy.y_train_clean, ds.y_train_clean.numpy())


def test_loose_training_images_need_the_csv(tmp_path):
    image_tree(tmp_path / "pics", flat_train=("a.png", "b.png"))
    with pytest.raises(data.DataFormatError, match=r"train/a.png: a training image outside any class folder"):
        load_arrays(tmp_path / "pics")
    labels = tmp_path / "labels.csv"  # given explicitly, outside the folder
    rows = [f"{n}/{i}.png,{n}" for n in ("cat", "dog", "emu") for i in range(3)] + ["a.png,dog", "b.png,2"]
    labels.write_text("file,label\n" + "\n".join(rows) + "\n")
    ds = load_arrays(tmp_path / "pics", labels_csv=labels)
    assert ds.y_train.tolist()[:2] == [1, 2]  # a.png, b.png sort before the class folders
    np.testing.assert_array_equal(ds.clean_indices.numpy(), np.arange(2, 11))  # the folder images are trusted
    np.testing.assert_array_equal(ds.clean_labels.numpy(), np.arange(9) // 3)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["cat/0.png,cat"], r"no label for the training image 'cat/1.png' \(8 of 9 missing\)"),
        (["cat/9.png,cat"], r"file 'cat/9.png' is not an image in"),
        (["cat/0.png,lion"], "line 2: label 'lion' is neither a class folder name"),
        (["cat/0.png,3"], r"line 2: label 3 outside \[0, 3\)"),
        (["cat/0.png,cat", "cat/0.png,dog"], "line 3: 'cat/0.png' is listed twice"),
    ],
    ids=["unlabelled", "unknown file", "unknown class", "index range", "twice"],
)
def test_bad_noisy_label_csv(tmp_path, rows, message):
    image_tree(tmp_path / "pics")
    (tmp_path / "pics" / "noisy_labels.csv").write_text("file,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(data.DataFormatError, match=f"noisy_labels.csv.*{message}"):
        load_arrays(tmp_path / "pics")


def test_image_sizes_and_modes(tmp_path):
    image_tree(tmp_path / "gray", mode="L")
    ds = load_arrays(tmp_path / "gray", flatten=True)
    assert ds.x_train.shape == (9, 30) and ds.num_classes == 3 == read_num_classes(tmp_path / "gray")
    assert load_arrays(tmp_path / "gray", num_classes=5).num_classes == 5  # more classes than folders
    image_tree(tmp_path / "mixed")
    Image.new("RGB", (9, 9)).save(tmp_path / "mixed" / "test" / "dog" / "big.png")
    with pytest.raises(data.DataFormatError, match=r"big.png: 9 x 9 pixels, but .* has 6 x 5: pass image_size="):
        load_arrays(tmp_path / "mixed")
    assert load_arrays(tmp_path / "mixed", image_size=4).x_test.shape == (4, 3, 4, 4)
    (tmp_path / "mixed" / "test" / "dog" / "big.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(data.DataFormatError, match="big.png: not a readable image"):
        load_arrays(tmp_path / "mixed", image_size=4)


def test_image_folder_needs_both_splits_in_class_folders(tmp_path):
    (tmp_path / "pics" / "train").mkdir(parents=True)
    with pytest.raises(data.DatasetNotAvailable, match=r"pics/test: folder missing"):
        load_arrays(tmp_path / "pics")
    (tmp_path / "pics" / "test").mkdir()
    with pytest.raises(data.DataFormatError, match="no class folder"):
        load_arrays(tmp_path / "pics")


# --- the Dataset record -------------------------------------------------------------------------------


def test_dataset_checks_its_trusted_labels():
    x, y = torch.zeros(4, 2), torch.tensor([0, 1, 1, 0])
    base = dict(name="d", x_train=x, y_train=y, x_test=x, y_test=y, num_classes=2)
    assert data.Dataset(**base).y_train_clean is None  # the existing callers are unchanged
    with pytest.raises(ValueError, match="not both"):
        data.Dataset(**base, y_train_clean=y, clean_indices=y, clean_labels=y)
    with pytest.raises(ValueError, match=r"y_train_clean holds values outside \[0, 2\)"):
        data.Dataset(**base, y_train_clean=y + 1)
    with pytest.raises(ValueError, match="y_train_clean must be an int64 tensor of length 4"):
        data.Dataset(**base, y_train_clean=y[:3])
    with pytest.raises(ValueError, match="go together"):
        data.Dataset(**base, clean_indices=torch.tensor([0]))
    with pytest.raises(ValueError, match=r"clean_indices holds values outside \[0, 4\)"):
        data.Dataset(**base, clean_indices=torch.tensor([4]), clean_labels=torch.tensor([0]))
    with pytest.raises(ValueError, match="repeats"):
        data.Dataset(**base, clean_indices=torch.tensor([1, 1]), clean_labels=torch.tensor([0, 0]))


# --- registration -------------------------------------------------------------------------------------


@pytest.fixture
def registered():
    names = []
    yield names
    for name in names:
        DATASETS.unregister(name)


def test_register_then_load_by_name(tmp_path, registered, monkeypatch):
    a = arrays()
    monkeypatch.chdir(tmp_path)
    npz(tmp_path / "mine.npz", **a)
    info = register_arrays_dataset("my_data", "mine.npz", label="My data")  # relative: resolved now
    registered.append("my_data")
    assert pyrobust.get_dataset("my_data") is info and "my_data" in data.list_datasets()
    assert info.num_classes == 4 and info.networks == ("fc",) and info.label == "My data"
    assert info.training["model"] == "fc" and info.training["optimizer"] == "adagrad"
    assert info.columns == (("none", 0.0),)  # trained on its labels as given
    monkeypatch.chdir("/")
    ds = data.load("my_data")
    assert ds.name == "my_data" and ds.num_classes == 4
    np.testing.assert_array_equal(ds.y_train.numpy(), a["y_train"])
    assert pickle.loads(pickle.dumps(info.loader)) == info.loader  # for spawned processes

    # registering the same again is harmless; another file under the name is refused
    register_arrays_dataset("my_data", tmp_path / "mine.npz", label="My data")
    with pytest.raises(ValueError, match="already registered"):
        register_arrays_dataset("my_data", tmp_path / "mine.npz", num_classes=5)


def test_register_image_arrays_for_a_resnet(tmp_path, registered):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    y = np.arange(8) % 2
    path = npz(tmp_path / "img.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    info = register_arrays_dataset("my_images", path, num_classes=3, network="resnet32",
                                   training={"epochs": 5}, seeds=2)
    registered.append("my_images")
    assert info.num_classes == 3 and info.seeds == 2
    assert dict(info.training) == {"model": "resnet32", "optimizer": "sgd", "lr": 0.01, "momentum": 0.9,
                                   "weight_decay": 1e-4, "epochs": 5, "lr_milestones": (40, 80)}
    ds = data.load("my_images")
    assert ds.x_train.shape == (8, 3, 32, 32) and ds.num_classes == 3  # not flattened for a ResNet


def test_register_checks_its_arguments(tmp_path, registered):
    with pytest.raises(ValueError, match="unknown network 'vgg'"):
        register_arrays_dataset("x_data", tmp_path / "x.npz", network="vgg")
    with pytest.raises(data.DatasetNotAvailable, match="x.npz: no such file"):
        register_arrays_dataset("x_data", tmp_path / "x.npz")
    info = register_arrays_dataset("x_data", tmp_path / "x.npz", num_classes=3)  # nothing read yet
    registered.append("x_data")
    assert info.num_classes == 3
    with pytest.raises(data.DatasetNotAvailable, match="x.npz: no such file"):
        data.load("x_data")
    with pytest.raises(ValueError, match="lower-case Python identifier"):
        register_arrays_dataset("My-Data", tmp_path / "x.npz", num_classes=3)
