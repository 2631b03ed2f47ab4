"""IMDB movie reviews (25,000 train, 25,000 test; label 1 = positive), as the paper uses them.

Sources: Keras's ``imdb.npz`` (reviews already as word-frequency ranks) or the raw ``aclImdb`` reviews
(tarball or extracted folder), tokenised here. Both are encoded with Keras's ``imdb.load_data``
conventions and ``num_words=5000``:

- a word of frequency rank ``r`` (1 = most frequent) gets id ``r + 3``; ids ``>= 5000`` become the
  out-of-vocabulary id ``2``; every review starts with the start id ``1``; ``0`` is padding (id 3 is
  unused). So the vocabulary is the 4,996 most frequent words, and every id is in [0, 5000).
- reviews are padded or truncated to 400 ids like Keras's ``pad_sequences`` defaults, which the authors'
  code used: *pre*-padding with zeros and *pre*-truncation (a long review keeps its last 400 ids).
- rows are shuffled like ``keras.datasets.imdb.load_data(seed=113)``, so the order is not sorted by label.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from pyrobust.data._common import DataFormatError, Dataset, DatasetNotAvailable, data_root, safe_unpickle
from pyrobust.data.download import placement_hint

NUM_WORDS = 5000
MAXLEN = 400
START_ID, OOV_ID, INDEX_FROM = 1, 2, 3
SHUFFLE_SEED = 113  # Keras's default

# One split as read: ((all ranks end to end, length of each review), labels).
_Split = tuple[tuple[np.ndarray, np.ndarray], np.ndarray]

_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")  # letters, with apostrophes inside words (don't, it's)
_REVIEW = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/[^/]+\.txt$")


def tokenize(text: str) -> list[str]:
    """Lower-case words of a raw review: ``<br />`` removed, split on anything but letters and inner apostrophes."""
    return _TOKEN.findall(text.replace("<br />", " ").lower())


def load_imdb(
    root: str | os.PathLike[str] | None = None, *, num_words: int = NUM_WORDS, maxlen: int = MAXLEN
) -> Dataset:
    """IMDB as int64 ``N x maxlen`` word ids in ``[0, num_words)`` and int64 labels (0 negative, 1 positive).

    Looked up, in this order, as ``imdb.npz`` in ``<root>/imdb/`` or ``<root>/`` (what ``fetch("imdb")``
    downloads), then as the raw reviews: the folder ``aclImdb/`` or the tarball ``aclImdb_v1.tar.gz`` in the
    same two places. For the raw reviews the ranks come from word counts over the 25,000 training reviews
    (ties broken alphabetically), so ids differ from those of ``imdb.npz``, whose ranks Keras computed.

    Raises:
        DatasetNotAvailable: none of the places holds the data (the message says what to put where).
        DataFormatError: a file is there but corrupted or in another format (the message names it).
    """
    root = data_root(root)
    candidates = [d / f for f in ("imdb.npz", "aclImdb", "aclImdb_v1.tar.gz") for d in (root / "imdb", root)]
    source = next((p for p in candidates if p.exists()), None)
    if source is None:
        raise DatasetNotAvailable(f"imdb: none of {', '.join(map(str, candidates))} exists.\n"
                                  f"{placement_hint('imdb', root)}")
    if source.name == "imdb.npz":
        (train_ranks, y_train), (test_ranks, y_test) = _read_keras_npz(source)
    else:
        (train_ranks, y_train), (test_ranks, y_test) = _read_acl_imdb(source, vocabulary_size=num_words)

    rng = np.random.RandomState(SHUFFLE_SEED)  # the legacy generator: the same order as Keras
    splits = []
    for (flat, lengths), y in ((train_ranks, y_train), (test_ranks, y_test)):
        order = np.arange(len(lengths))
        rng.shuffle(order)
        x = _encode(flat, lengths, num_words=num_words, maxlen=maxlen)
        splits.append((torch.from_numpy(x[order]), torch.from_numpy(y[order])))
    (x_train, y_train), (x_test, y_test) = splits
    return Dataset("imdb", x_train, y_train, x_test, y_test, num_classes=2)


def encode(ranks: list[list[int]], *, num_words: int = NUM_WORDS, maxlen: int = MAXLEN) -> np.ndarray:
    """Word ranks (1 = most frequent) of each review -> int64 ``len(ranks) x maxlen`` ids, Keras's way.

    Review ``[r_1, ..., r_L]`` becomes ``[1, id(r_1), ..., id(r_L)]`` with ``id(r) = r + 3`` if that is
    ``< num_words``, else 2; then its last ``maxlen`` ids are kept, right-aligned after zero padding.
    """
    return _encode(*_ragged(ranks, "ranks"), num_words=num_words, maxlen=maxlen)


def _ragged(ranks: list[list[int]], what: str) -> tuple[np.ndarray, np.ndarray]:
    """Reviews as one flat int64 array of ranks and the int64 length of each (checked: ints ``>= 0``)."""
    lengths = np.fromiter(map(len, ranks), dtype=np.int64, count=len(ranks))
    flat = np.array(list(itertools.chain.from_iterable(ranks)))  # a float or str anywhere -> another dtype
    if len(flat) and (flat.dtype.kind not in "iu" or flat.min() < 0):
        raise DataFormatError(f"{what}: word ranks must be non-negative ints, got {flat.dtype}")
    return flat.astype(np.int64), lengths


def _encode(flat: np.ndarray, lengths: np.ndarray, *, num_words: int, maxlen: int) -> np.ndarray:
    n = len(lengths)
    ids = np.where(flat < num_words - INDEX_FROM, flat + INDEX_FROM, OOV_ID)  # no overflow near 2**63
    lengths = lengths + 1  # with the start id, then the review's ids: one block per review, end to end
    ends = np.cumsum(lengths)
    is_start = np.zeros(int(ends[-1]) if n else 0, dtype=bool)
    is_start[ends - lengths] = True
    sequence = np.full(len(is_start), START_ID, dtype=np.int64)
    sequence[~is_start] = ids
    # Pre-truncate and pre-pad: row i takes its last keep_i ids into its last keep_i columns.
    keep = np.minimum(lengths, maxlen)
    row = np.repeat(np.arange(n), keep)
    within = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)
    out = np.zeros((n, maxlen), dtype=np.int64)
    out[row, np.repeat(maxlen - keep, keep) + within] = sequence[np.repeat(ends - keep, keep) + within]
    return out


def _read_keras_npz(path: Path) -> tuple[_Split, _Split]:
    """``x_train``/``x_test`` (object arrays of lists of word ranks) and ``y_train``/``y_test`` of ``imdb.npz``.

    Never ``np.load(allow_pickle=True)``: the object arrays are unpickled with the restricted unpickler, and
    every element must be a list of non-negative ints.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(f"{name}.npy") for name in ("x_train", "y_train", "x_test", "y_test")}
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error) as err:
        raise DataFormatError(f"{path}: not a Keras imdb.npz (needs x_train, y_train, x_test, y_test: {err})") from err
    splits = []
    for split in ("train", "test"):
        x = _read_npy(members[f"x_{split}"], f"{path}:x_{split}.npy")
        y = _read_npy(members[f"y_{split}"], f"{path}:y_{split}.npy")
        what = f"{path}:x_{split}.npy"
        if x.dtype != object or x.ndim != 1 or not all(type(review) is list for review in x):
            raise DataFormatError(f"{what}: expected a 1-D object array of lists, got {x.dtype} {x.shape}")
        if y.shape != x.shape or y.dtype.kind not in "iu" or not np.isin(y, (0, 1)).all():
            raise DataFormatError(f"{path}:y_{split}.npy: expected {len(x)} labels in {{0, 1}}, got {y.dtype} "
                                  f"{y.shape}")
        splits.append((_ragged(list(x), what), y.astype(np.int64)))
    return tuple(splits)


def _read_npy(raw: bytes, what: str) -> np.ndarray:
    """One ``.npy`` member: plain arrays through ``np.load(allow_pickle=False)``, object arrays through the
    restricted unpickler (NumPy stores an object array as a pickle of the whole array after the header)."""
    stream = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        shape, _, dtype = read_header[version](stream)
        if not dtype.hasobject:
            return np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, KeyError, OSError, EOFError) as err:
        raise DataFormatError(f"{what}: not a valid .npy file ({err})") from err
    array = safe_unpickle(stream, what)
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise DataFormatError(f"{what}: the pickled array does not match its header (shape {shape})")
    return array


def _read_acl_imdb(source: Path, *, vocabulary_size: int) -> tuple[_Split, _Split]:
    """Tokenise the raw reviews and rank words by frequency over the training reviews."""
    reviews = {"train": [], "test": []}  # (member path, label, tokens); unsup/ is ignored
    for name, split, label, raw in _review_files(source):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataFormatError(f"{source}: {name} is not UTF-8 text ({err})") from err
        reviews[split].append((name, label, tokenize(text)))
    for split, items in reviews.items():
        if {label for _, label, _ in items} != {0, 1}:
            raise DataFormatError(f"{source}: no aclImdb/{split}/pos and aclImdb/{split}/neg reviews found")
        items.sort(key=lambda item: item[0])  # tarball and directory order differ: fix one

    counts = Counter(itertools.chain.from_iterable(tokens for _, _, tokens in reviews["train"]))
    ranked = sorted(counts, key=lambda word: (-counts[word], word))[:vocabulary_size]
    rank = {word: r for r, word in enumerate(ranked, start=1)}
    unknown = vocabulary_size  # any rank >= num_words - 3 maps to the out-of-vocabulary id
    return tuple(
        (_ragged([[rank.get(w, unknown) for w in tokens] for _, _, tokens in items], str(source)),
         np.array([label for _, label, _ in items], dtype=np.int64))
        for items in (reviews["train"], reviews["test"])
    )


def _review_files(source: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """``(name, split, label, content)`` of every labelled review in the ``aclImdb`` folder or tarball."""
    if source.is_dir():
        for path in sorted(source.rglob("*.txt")):
            name = path.relative_to(source.parent).as_posix()
            if match := _REVIEW.search(name):
                yield name, match[1], int(match[2] == "pos"), path.read_bytes()
        return
    try:
        with tarfile.open(source, "r:gz") as tar:
            for member in tar:  # read in place, in one pass, never extracted
                if member.isfile() and (match := _REVIEW.search(member.name)):
                    yield member.name, match[1], int(match[2] == "pos"), tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataFormatError(f"{source}: not a readable .tar.gz ({type(err).__name__}: {err})") from err


__all__ = ["load_imdb", "encode", "tokenize"]
