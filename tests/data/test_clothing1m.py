"""Clothing1M: the published list files, lazy JPEG decoding through a DataLoader, T from the clean subset."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pyrobust.data as data
from pyrobust.data.clothing1m import (
    KEY_LISTS,
    NUM_CLASSES,
    clothing1m_dir,
    load_clothing1m,
    transition_from_clean,
)
from pyrobust.data.images import IMAGENET_MEAN, IMAGENET_STD, ImageFiles, ImageTransform

NAMES = ["T-Shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie", "Windbreaker", "Jacket", "Downcoat",
         "Suit", "Shawl", "Dress", "Vest", "Underwear"]


def colour(i: int) -> tuple[int, int, int]:
    return (16 * (i % 16), 8 * (i % 32), 255 - 4 * (i % 64))


def make_tree(root: Path) -> dict:
    """A tiny Clothing1M: per class two clean training images that also have a noisy label (the first
    noisy label is the class, the second the next class), 6 noisy-only images, 3 validation images (one
    also noisily labelled), 3 test images. Every image is a uniformly coloured JPEG of a few pixels."""
    root.mkdir(parents=True)
    noisy, clean = {}, {}
    lists = {split: [] for split in KEY_LISTS}
    image = 0

    def add(split_lists, clean_label=None, noisy_label=None):
        nonlocal image
        key = f"images/{image % 3}/{image:02d}/{image}.jpg"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12 + image % 5, 9 + image % 3), colour(image)).save(path, quality=100)
        image += 1
        if clean_label is not None:
            clean[key] = clean_label
        if noisy_label is not None:
            noisy[key] = noisy_label
        for split in split_lists:
            lists[split].append(key)
        return key

    for c in range(NUM_CLASSES):
        add(["clean_train", "noisy_train"], c, c)
        add(["clean_train", "noisy_train"], c, (c + 1) % NUM_CLASSES)
    for i in range(6):
        add(["noisy_train"], None, (3 * i) % NUM_CLASSES)
    add(["clean_val", "noisy_train"], 5, 9)  # an overlap outside the clean training split
    add(["clean_val"], 6)
    add(["clean_val"], 7)
    for c in (0, 13, 4):
        add(["clean_test"], c)

    (root / "category_names_eng.txt").write_text("\n".join(NAMES) + "\n")
    (root / "noisy_label_kv.txt").write_text("".join(f"{k} {v}\n" for k, v in noisy.items()))
    (root / "clean_label_kv.txt").write_text("".join(f"{k} {v}\n" for k, v in clean.items()))
    for split, name in KEY_LISTS.items():
        (root / name).write_text("".join(f"{k}\n" for k in lists[split]))
    return {"noisy": noisy, "clean": clean, "lists": lists}


@pytest.fixture
def tree(tmp_path):
    return tmp_path / "clothing1m", make_tree(tmp_path / "clothing1m")


def small() -> ImageTransform:
    return ImageTransform(resize=8, crop=6)


def test_the_splits_and_their_labels(tree):
    root, info = tree
    ds = load_clothing1m(path=root)
    assert ds.class_names == tuple(NAMES) and ds.num_classes == 14
    for split in KEY_LISTS:
        files = ds.split(split)
        assert isinstance(files, torch.utils.data.Dataset) and len(files) == len(info["lists"][split])
        table = info["noisy" if split == "noisy_train" else "clean"]
        assert files.paths == info["lists"][split]
        np.testing.assert_array_equal(files.labels, [table[k] for k in info["lists"][split]])
    assert (len(ds.noisy_train), len(ds.clean_train), len(ds.clean_val), len(ds.clean_test)) == (35, 28, 3, 3)
    with pytest.raises(ValueError, match="unknown Clothing1M split 'train'"):
        ds.split("train")


def test_default_transforms_follow_the_paper(tree):
    """Sec. 5.3: augmentation for the clean 50k; none for the 1M noisy images (only weight decay)."""
    ds = load_clothing1m(path=tree[0])
    train, evaluate = ds.clean_train.transform, ds.clean_test.transform
    assert (train.resize, train.crop, train.random_crop, train.flip) == (256, 224, True, True)
    assert (evaluate.resize, evaluate.crop, evaluate.random_crop, evaluate.flip) == (256, 224, False, False)
    assert ds.noisy_train.transform.random_crop is False and ds.clean_val.transform.random_crop is False
    assert load_clothing1m(path=tree[0], augment_noisy=True).noisy_train.transform.random_crop is True


def test_an_item_is_a_normalised_224_crop(tree):
    ds = load_clothing1m(path=tree[0])
    x, y = ds.clean_test[1]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.item() == 13
    rgb = np.asarray(Image.open(ds.clean_test.path(1)).convert("RGB"), dtype=np.float64)[0, 0] / 255
    expected = (rgb - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)  # a uniform image stays uniform
    np.testing.assert_allclose(x.mean(dim=(1, 2)).numpy(), expected, atol=0.03)


def test_T_from_the_clean_training_images_with_a_noisy_label(tree):
    ds = load_clothing1m(path=tree[0])
    expected = 0.5 * (torch.eye(14, dtype=torch.float64) + torch.eye(14, dtype=torch.float64).roll(1, dims=1))
    torch.testing.assert_close(transition_from_clean(ds), expected)
    torch.testing.assert_close(ds.transition_from_clean("train"), expected)
    with_val = ds.transition_from_clean("all")  # adds the validation image of class 5 labelled 9
    torch.testing.assert_close(with_val[5], torch.tensor([0] * 5 + [1 / 3, 1 / 3] + [0, 0, 1 / 3] + [0] * 4,
                                                         dtype=torch.float64))
    assert list(ds.overlap_split).count("clean_val") == 1 and len(ds.overlap_clean) == 29
    with pytest.raises(ValueError, match="subset must be 'train' or 'all'"):
        ds.transition_from_clean("val")


def test_a_dataloader_with_two_workers_yields_normalised_batches(tree):
    ds = load_clothing1m(path=tree[0])
    loader = torch.utils.data.DataLoader(ds.clean_train, batch_size=8, shuffle=True, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert len(batches) == 4 and sum(len(y) for _, y in batches) == 28
    x, y = batches[0]
    assert x.shape == (8, 3, 224, 224) and x.dtype == torch.float32 and y.dtype == torch.int64
    low = (0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    high = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    per_channel = x.transpose(0, 1).flatten(1)
    assert (per_channel.min(1).values >= low - 1e-5).all() and (per_channel.max(1).values <= high + 1e-5).all()
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(ds.clean_train.labels.tolist())


def test_the_splits_pickle_for_spawned_workers(tree):
    ds = load_clothing1m(path=tree[0])
    copy = pickle.loads(pickle.dumps(ds.clean_test))
    assert copy.paths == ds.clean_test.paths and torch.equal(copy[0][0], ds.clean_test[0][0])


def test_found_under_the_data_root(tree, monkeypatch):
    root = tree[0].parent
    assert clothing1m_dir(root) == tree[0]
    monkeypatch.setenv("PYROBUST_DATA", str(root))
    assert len(load_clothing1m().clean_test) == 3
    assert clothing1m_dir(tree[0]) == tree[0]  # the folder itself, holding noisy_label_kv.txt


def test_absent_data_set_says_where_to_get_it(tmp_path):
    with pytest.raises(data.DatasetNotAvailable, match=r"clothing1m: .* does not exist.*Cysu/noisy_label"):
        load_clothing1m(tmp_path)


@pytest.mark.parametrize("name", ["clean_val_key_list.txt", "noisy_label_kv.txt", "category_names_eng.txt"])
def test_a_missing_list_file_is_named(tree, name):
    (tree[0] / name).unlink()
    with pytest.raises(data.DatasetNotAvailable, match=f"{name}: Clothing1M list file missing"):
        load_clothing1m(path=tree[0])


@pytest.mark.parametrize(
    ("name", "line", "message"),
    [
        ("noisy_label_kv.txt", "images/x.jpg", r"line 36: expected '<image key> <label>'"),
        ("noisy_label_kv.txt", "images/x.jpg three", "line 36: label 'three' is not an integer"),
        ("clean_label_kv.txt", "images/x.jpg 14", r"line 35: label 14 outside \[0, 14\)"),
        ("clean_label_kv.txt", "images/0/00/0.jpg 3", "line 35: key 'images/0/00/0.jpg' is listed twice"),
        ("clean_label_kv.txt", "../../etc/passwd 3", "line 35: key '../../etc/passwd' is not a path inside"),
        ("clean_test_key_list.txt", "images/a.jpg images/b.jpg", "line 4: expected one image key"),
        ("clean_test_key_list.txt", "images/unlabelled.jpg",
         "key 'images/unlabelled.jpg' has no label in .*clean_label_kv"),
    ],
    ids=["fields", "not-int", "range", "duplicate", "traversal", "two-keys", "no-label"],
)
def test_a_bad_line_is_named_with_its_file(tree, name, line, message):
    with open(tree[0] / name, "a") as f:
        f.write(line + "\n")
    with pytest.raises(data.DataFormatError, match=f"{name}.*{message}"):
        load_clothing1m(path=tree[0])


def test_class_names_must_be_14(tree):
    (tree[0] / "category_names_eng.txt").write_text("T-Shirt\nShirt\n")
    with pytest.raises(data.DataFormatError, match="category_names_eng.txt: expected 14 class names"):
        load_clothing1m(path=tree[0])


def test_a_missing_or_broken_image(tree):
    root, info = tree
    key = info["lists"]["clean_test"][2]
    (root / key).unlink()
    ds = load_clothing1m(path=root)
    assert ds.clean_test.missing() == [root / key]
    with pytest.raises(data.DatasetNotAvailable, match=f"{key}: image file missing .*clean_test_key_list.txt"):
        ds.clean_test[2]
    with pytest.raises(data.DatasetNotAvailable, match=f"{key}: image missing .*clean_test_key_list.txt"):
        load_clothing1m(path=root, check_images=True)

    broken = info["lists"]["clean_test"][0]
    content = (root / broken).read_bytes()
    (root / broken).write_bytes(content[: len(content) // 2])
    with pytest.raises(data.DataFormatError, match=f"{broken}: not a readable image"):
        ds.clean_test[0]


# --- the transform ------------------------------------------------------------------------------------


def test_transform_resizes_the_shorter_side_then_crops_the_centre():
    gradient = np.tile(np.arange(40, dtype=np.uint8)[None, :, None] * 6, (20, 1, 3))  # 20 high, 40 wide
    image = Image.fromarray(gradient)
    t = ImageTransform(resize=10, crop=10, mean=(0, 0, 0), std=(1, 1, 1))
    x = t(image)  # 20 x 10 after the resize, then the centre 10 x 10
    assert x.shape == (3, 10, 10)
    np.testing.assert_allclose(x[0, 0].numpy() * 255, gradient[0, 10:30:2, 0] + 3, atol=4)


def test_transform_flips_and_crops_at_random_from_torch_generator():
    image = Image.fromarray(np.tile(np.arange(16, dtype=np.uint8)[None, :, None] * 15, (16, 1, 3)))
    t = ImageTransform(resize=None, crop=16, flip=True, mean=(0, 0, 0), std=(1, 1, 1))
    plain = torch.arange(16, dtype=torch.float32) * 15 / 255
    torch.manual_seed(0)
    rows = {tuple(t(image)[0, 0].tolist()) for _ in range(20)}
    assert rows == {tuple(plain.tolist()), tuple(plain.flip(0).tolist())}
    crop = ImageTransform(resize=None, crop=4, random_crop=True, mean=(0, 0, 0), std=(1, 1, 1))
    assert len({crop(image)[0, 0, 0].item() for _ in range(30)}) > 3  # many offsets


def test_transform_arguments_are_checked():
    with pytest.raises(ValueError, match="need 1 <= crop <= resize"):
        ImageTransform(resize=200, crop=224)
    with pytest.raises(ValueError, match="mean and std need 3 entries"):
        ImageTransform(std=(0.2, 0.2))


def test_image_files_checks_lengths(tmp_path):
    with pytest.raises(ValueError, match="2 paths but labels of shape"):
        ImageFiles(tmp_path, ["a.jpg", "b.jpg"], [0])
    assert len(ImageFiles(tmp_path, [], [])) == 0
