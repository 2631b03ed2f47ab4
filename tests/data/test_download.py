"""fetch(): download from a local HTTP server with checksums, atomic writes, resume, and clear failures."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from datafiles import mnist_arrays, mnist_files, sha256

import pyrobust.data as data
from pyrobust import registry
from pyrobust.data import download
from pyrobust.entries import Remote

PAYLOAD = bytes(range(256)) * 1000  # 256 kB, several read chunks


def fetch_imdb(server, root, **kwargs):
    kwargs.setdefault("checksums", {"imdb.npz": sha256(PAYLOAD)})
    return data.fetch("imdb", root, base_url=server.base_url, progress=False, **kwargs)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def test_download_all_files_then_load(file_server, tmp_path):
    arrays = mnist_arrays()
    file_server.files = mnist_files(arrays)
    checksums = {name: sha256(content) for name, content in file_server.files.items()}
    paths = data.fetch("mnist", tmp_path, base_url=file_server.base_url, progress=False, checksums=checksums)

    assert [p.name for p in paths] == [r.filename for r in download.remotes("mnist")]
    assert all(p.parent == tmp_path / "mnist" and p.read_bytes() == file_server.files[p.name] for p in paths)
    assert leftovers(tmp_path) == sorted(file_server.files)  # no .part left behind
    ds = data.load("mnist", tmp_path)
    np.testing.assert_array_equal(ds.x_train.numpy() * 255, arrays["train-images-idx3-ubyte"].reshape(-1, 784))
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])


def test_existing_file_is_verified_not_downloaded(file_server, tmp_path):
    file_server.files = {"imdb.npz": PAYLOAD}
    fetch_imdb(file_server, tmp_path)
    fetch_imdb(file_server, tmp_path)
    assert len(file_server.requests) == 1

    (tmp_path / "imdb" / "imdb.npz").write_bytes(b"something else")
    with pytest.raises(data.ChecksumMismatch, match=sha256(PAYLOAD)):
        fetch_imdb(file_server, tmp_path)
    assert (tmp_path / "imdb" / "imdb.npz").read_bytes() == b"something else"  # left for the user to inspect


def test_checksum_mismatch_deletes_the_download(file_server, tmp_path):
    file_server.files = {"imdb.npz": PAYLOAD}
    wrong = "0" * 64
    with pytest.raises(data.ChecksumMismatch) as err:
        fetch_imdb(file_server, tmp_path, checksums={"imdb.npz": wrong})
    message = str(err.value)
    assert "imdb.npz" in message and wrong in message and sha256(PAYLOAD) in message
    assert leftovers(tmp_path) == []


def test_pinned_checksums_are_used_by_default(file_server, tmp_path):
    file_server.files = {"imdb.npz": PAYLOAD}
    with pytest.raises(data.ChecksumMismatch, match=download.remotes("imdb")[0].sha256):
        data.fetch("imdb", tmp_path, base_url=file_server.base_url, progress=False)


def test_truncated_transfer_keeps_part_then_resumes(file_server, tmp_path):
    file_server.files = {"imdb.npz": PAYLOAD}
    file_server.truncate = {"imdb.npz": 100_000}
    with pytest.raises(data.DownloadError, match="100000 of 256000 bytes"):
        fetch_imdb(file_server, tmp_path)
    part = tmp_path / "imdb" / "imdb.npz.part"
    assert part.read_bytes() == PAYLOAD[:100_000]
    assert not (tmp_path / "imdb" / "imdb.npz").exists()  # never a half file under the final name

    file_server.truncate = {}
    fetch_imdb(file_server, tmp_path)
    assert file_server.requests[-1] == ("imdb.npz", "bytes=100000-")
    assert (tmp_path / "imdb" / "imdb.npz").read_bytes() == PAYLOAD
    assert not part.exists()


def test_resume_restarts_cleanly_without_range_support(file_server, tmp_path):
    file_server.files = {"imdb.npz": PAYLOAD}
    file_server.ranges = False
    part = tmp_path / "imdb" / "imdb.npz.part"
    part.parent.mkdir()
    part.write_bytes(b"x" * 5000)  # a stale .part: with a 200 answer it must be overwritten, not appended to
    fetch_imdb(file_server, tmp_path)
    assert file_server.requests == [("imdb.npz", "bytes=5000-")]
    assert (tmp_path / "imdb" / "imdb.npz").read_bytes() == PAYLOAD


def test_part_longer_than_the_file_restarts(file_server, tmp_path):
    file_server.files = {"imdb.npz": PAYLOAD}
    part = tmp_path / "imdb" / "imdb.npz.part"
    part.parent.mkdir()
    part.write_bytes(b"x" * (len(PAYLOAD) + 10))  # the server answers 416: start over
    fetch_imdb(file_server, tmp_path)
    assert [r for _, r in file_server.requests] == [f"bytes={len(PAYLOAD) + 10}-", None]
    assert (tmp_path / "imdb" / "imdb.npz").read_bytes() == PAYLOAD


def test_corrupt_part_is_caught_by_the_checksum(file_server, tmp_path):
    file_server.files = {"imdb.npz": PAYLOAD}
    part = tmp_path / "imdb" / "imdb.npz.part"
    part.parent.mkdir()
    part.write_bytes(b"x" * 1000)  # resumed onto a wrong prefix
    with pytest.raises(data.ChecksumMismatch):
        fetch_imdb(file_server, tmp_path)
    assert leftovers(tmp_path) == []
    fetch_imdb(file_server, tmp_path)  # and the next try starts from scratch
    assert (tmp_path / "imdb" / "imdb.npz").read_bytes() == PAYLOAD


@pytest.mark.parametrize("status", [404, 500])
def test_http_error(file_server, tmp_path, status):
    file_server.files = {"imdb.npz": PAYLOAD}
    file_server.status = {"imdb.npz": status}
    with pytest.raises(data.DownloadError, match=f"{file_server.base_url}/imdb.npz failed: HTTP {status}"):
        fetch_imdb(file_server, tmp_path)
    assert leftovers(tmp_path) == []


def test_base_url_from_environment(file_server, tmp_path, monkeypatch):
    file_server.files = {"imdb.npz": PAYLOAD}
    monkeypatch.setenv("PYROBUST_DATA_URL", file_server.base_url + "/")
    data.fetch("imdb", tmp_path, progress=False, checksums={"imdb.npz": sha256(PAYLOAD)})
    assert file_server.requests == [("imdb.npz", None)]


def test_load_with_download_uses_the_checksum_table(file_server, tmp_path, monkeypatch):
    arrays = mnist_arrays(seed=3)
    file_server.files = mnist_files(arrays, gz=True)
    table = tuple(Remote(name, f"{file_server.base_url}/{name}", sha256(content))
                  for name, content in file_server.files.items())
    mnist = registry.get_dataset("mnist")
    monkeypatch.setitem(registry.DATASETS._entries, "mnist", dataclasses.replace(mnist, files=table))
    with pytest.raises(data.DatasetNotAvailable):
        data.load("mnist", tmp_path)
    ds = data.load("mnist", tmp_path, download=True)
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train-labels-idx1-ubyte"])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast_naming_files(tmp_path):
    with pytest.raises(data.DatasetNotAvailable) as err:
        data.fetch("cifar10", tmp_path, base_url=f"http://127.0.0.1:{closed_port()}", progress=False)
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert "cifar-10-python.tar.gz" in message and str(tmp_path / "cifar10") in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message  # where to get it by hand


def test_silent_server_times_out(tmp_path):
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        start = time.monotonic()
        with pytest.raises(data.DatasetNotAvailable, match="imdb.npz"):
            data.fetch("imdb", tmp_path, base_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
                       progress=False, timeout=0.3)
        assert time.monotonic() - start < 5


def test_mnist5k_needs_no_download(tmp_path):
    assert data.fetch("mnist5k", tmp_path) == []
    with pytest.raises(ValueError, match="unknown data set 'svhn'"):
        data.fetch("svhn", tmp_path)


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYROBUST_DATA", raising=False)
    assert data.data_root() == tmp_path / "data"
    monkeypatch.setenv("PYROBUST_DATA", str(tmp_path / "env"))
    assert data.data_root() == tmp_path / "env"
    assert data.data_root("arg") == tmp_path / "arg"
    assert data.data_root(tmp_path / "abs") == tmp_path / "abs"
    assert os.path.isabs(data.data_root("rel"))
