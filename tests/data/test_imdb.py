"""IMDB from Keras's imdb.npz (read without trusting its pickles) and from the raw aclImdb reviews."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from datafiles import Exploit, imdb_npz, object_array, tar_gz

import pyrobust.data as data
from pyrobust.data.imdb import encode, load_imdb, tokenize


def keras_reference(ranks: list[list[int]], num_words: int = 5000, maxlen: int = 400) -> list[list[int]]:
    """keras.datasets.imdb.load_data (start_char=1, oov_char=2, index_from=3) + pad_sequences defaults."""
    rows = []
    for review in ranks:
        ids = [1] + [w + 3 for w in review]
        ids = [w if w < num_words else 2 for w in ids][-maxlen:]  # truncating="pre"
        rows.append([0] * (maxlen - len(ids)) + ids)  # padding="pre"
    return rows


def keras_order(n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(113)
    train, test = np.arange(n_train), np.arange(n_test)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def random_reviews(rng, n):
    # Zipf-like ranks up to 20,000, some reviews longer than 400 words, one empty.
    return [rng.zipf(1.3, rng.integers(0, 600)).clip(max=20_000).tolist() for _ in range(n - 1)] + [[]]


def test_npz_round_trip_matches_keras(tmp_path):
    rng = np.random.default_rng(0)
    x_train, x_test = random_reviews(rng, 30), random_reviews(rng, 20)
    y_train, y_test = rng.integers(0, 2, 30), rng.integers(0, 2, 20)
    (tmp_path / "imdb").mkdir()
    (tmp_path / "imdb" / "imdb.npz").write_bytes(imdb_npz(x_train, y_train, x_test, y_test))
    ds = data.load("imdb", tmp_path)

    order_train, order_test = keras_order(30, 20)
    assert ds.x_train.dtype == torch.int64 and ds.x_train.shape == (30, 400) and ds.x_test.shape == (20, 400)
    assert ds.x_train.tolist() == [keras_reference(x_train)[i] for i in order_train]
    assert ds.x_test.tolist() == [keras_reference(x_test)[i] for i in order_test]
    assert ds.y_train.tolist() == y_train[order_train].tolist() and ds.y_test.dtype == torch.int64
    assert ds.num_classes == 2 and 0 <= ds.x_train.min() and ds.x_train.max() < 5000
    assert any(len(r) + 1 > 400 for r in x_train)  # truncation was exercised


def test_encode_by_hand():
    # [1, 2, 10] -> [1, 4, 5, 13 -> oov 2] -> keep the last 3; [5] -> [1, 8 -> oov 2] -> pad in front.
    np.testing.assert_array_equal(encode([[1, 2, 10], [5], []], num_words=8, maxlen=3),
                                  [[4, 5, 2], [0, 1, 2], [0, 0, 1]])


def npz_with(tmp_path, **members) -> None:
    buffer = io.BytesIO()
    defaults = dict(x_train=object_array([[1, 2], [3]]), y_train=np.array([0, 1]),
                    x_test=object_array([[4]]), y_test=np.array([1]))
    np.savez(buffer, **{**defaults, **members})
    (tmp_path / "imdb.npz").write_bytes(buffer.getvalue())


def test_malicious_npz_is_rejected_without_running(tmp_path):
    marker = tmp_path / "pwned"
    npz_with(tmp_path, x_train=object_array([Exploit(f"touch {marker}"), [1]]))
    with pytest.raises(data.DataFormatError, match=r"imdb.npz:x_train.npy: .*forbidden global (posix|os)\.system"):
        data.load("imdb", tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "members, message",
    [
        (dict(x_train=object_array([[1, 2], "some text"])), "x_train.npy: expected a 1-D object array of lists"),
        (dict(x_train=np.array([[1, 2], [3, 4]])), "x_train.npy: expected a 1-D object array of lists"),
        (dict(x_test=object_array([[1.5]])), "x_test.npy: word ranks must be non-negative ints"),
        (dict(x_test=object_array([[-1]])), "x_test.npy: word ranks must be non-negative ints"),
        (dict(y_train=np.array([0, 2])), r"y_train.npy: expected 2 labels in \{0, 1\}"),
        (dict(y_test=np.array([1, 0])), r"y_test.npy: expected 1 labels in \{0, 1\}"),
        (dict(y_test=np.array(["pos"])), r"y_test.npy: expected 1 labels"),
    ],
)
def test_wrong_npz_contents_name_the_member(tmp_path, members, message):
    npz_with(tmp_path, **members)
    with pytest.raises(data.DataFormatError, match=message) as err:
        data.load("imdb", tmp_path)
    assert str(tmp_path / "imdb.npz") in str(err.value)


def test_not_an_npz(tmp_path):
    (tmp_path / "imdb.npz").write_bytes(b"<html>quota exceeded</html>")
    with pytest.raises(data.DataFormatError, match="not a Keras imdb.npz"):
        data.load("imdb", tmp_path)
    with zipfile.ZipFile(tmp_path / "imdb.npz", "w") as archive:
        archive.writestr("x_train.npy", b"\x93NUMPY garbage")
        archive.writestr("y_train.npy", b"")
        archive.writestr("x_test.npy", b"")
        archive.writestr("y_test.npy", b"")
    with pytest.raises(data.DataFormatError, match="x_train.npy: not a valid .npy file"):
        data.load("imdb", tmp_path)


def test_tokenize():
    assert tokenize("It's<br /><br />a GREAT film—isn't it? 10/10, 'café' _x_") == [
        "it's", "a", "great", "film", "isn't", "it", "café", "x"]


ACL_REVIEWS = {
    "aclImdb/train/pos/0_10.txt": "Great movie!<br /><br />Great acting, didn't disappoint.",
    "aclImdb/train/neg/1_2.txt": "Bad movie. BAD plot; 10/10 bad.",
    "aclImdb/test/pos/2_9.txt": "Great plot, unseen words.",
    "aclImdb/test/neg/3_1.txt": "Movie was bad",
    "aclImdb/train/unsup/4_0.txt": "zzz zzz zzz zzz zzz",  # unlabelled: ignored, also for the vocabulary
    "aclImdb/train/urls_pos.txt": "http://www.imdb.com/title/tt0453418/usercomments",
    "aclImdb/imdb.vocab": "the\nand\n",
}
# Train counts: bad 3, great 2, movie 2, acting/didn't/disappoint/plot 1 -> ranks in that order (ties
# alphabetical), id = rank + 3: bad 4, great 5, movie 6, acting 7, didn't 8, disappoint 9, plot 10.
ACL_EXPECTED = {
    "train": {((1, 5, 6, 5, 7, 8, 9), 1), ((1, 4, 6, 4, 10, 4), 0)},
    "test": {((1, 5, 10, 2, 2), 1), ((1, 6, 2, 4), 0)},  # unseen, words, was: out of vocabulary
}


def rows(x: torch.Tensor, y: torch.Tensor) -> set:
    return {(tuple(w for w in row if w), label) for row, label in zip(x.tolist(), y.tolist())}


@pytest.mark.parametrize("layout", ["tarball", "folder"])
def test_raw_reviews(tmp_path, layout):
    if layout == "tarball":
        (tmp_path / "aclImdb_v1.tar.gz").write_bytes(tar_gz({k: v.encode() for k, v in ACL_REVIEWS.items()}))
    else:
        for name, text in ACL_REVIEWS.items():
            (tmp_path / "imdb" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "imdb" / name).write_text(text, encoding="utf-8")
    ds = data.load("imdb", tmp_path)
    assert ds.x_train.shape == (2, 400) and ds.x_train.dtype == torch.int64
    assert rows(ds.x_train, ds.y_train) == ACL_EXPECTED["train"]
    assert rows(ds.x_test, ds.y_test) == ACL_EXPECTED["test"]
    assert (ds.x_train[:, :393] == 0).all()  # pre-padding

    small = load_imdb(tmp_path, num_words=9, maxlen=5)  # ids >= 9 (disappoint, plot) -> oov
    assert rows(small.x_train, small.y_train) == {((6, 5, 7, 8, 2), 1), ((1, 4, 6, 4, 2, 4)[-5:], 0)}


def test_npz_is_preferred_over_raw_reviews(tmp_path):
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(b"not even read")
    (tmp_path / "imdb.npz").write_bytes(imdb_npz([[7]], [1], [[8]], [0]))
    assert data.load("imdb", tmp_path).x_train[0, -2:].tolist() == [1, 10]


def test_raw_reviews_are_checked(tmp_path):
    reviews = {k: v.encode() for k, v in ACL_REVIEWS.items()}
    reviews["aclImdb/test/neg/3_1.txt"] = b"caf\xe9"  # latin-1, not UTF-8
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(tar_gz(reviews))
    with pytest.raises(data.DataFormatError, match="aclImdb/test/neg/3_1.txt is not UTF-8"):
        data.load("imdb", tmp_path)
    del reviews["aclImdb/test/neg/3_1.txt"]
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(tar_gz(reviews))
    with pytest.raises(data.DataFormatError, match="no aclImdb/test/pos and aclImdb/test/neg reviews"):
        data.load("imdb", tmp_path)
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(tar_gz(reviews)[:100])
    with pytest.raises(data.DataFormatError, match="aclImdb_v1.tar.gz: not a readable .tar.gz"):
        data.load("imdb", tmp_path)


def test_missing_dataset_names_the_file_and_the_root(tmp_path):
    with pytest.raises(data.DatasetNotAvailable) as err:
        data.load("imdb", tmp_path)
    assert "imdb.npz" in str(err.value) and str(tmp_path / "imdb") in str(err.value)
