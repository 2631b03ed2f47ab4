"""pyrobust._io, the one atomic writer: a file is whole or absent, a full disk leaves nothing behind and says
which file, and files get the usual permissions."""

import errno
import json
import os
import stat

import numpy as np
import pytest
from full_disk import HalfWritten

from pyrobust import _io
from pyrobust._io import atomic_write, write_json, write_npy, write_text


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def full_disk(monkeypatch):
    """ENOSPC on the first write after half of the payload went to disk (the usual way a disk fills)."""
    real_fdopen = os.fdopen
    monkeypatch.setattr(_io.os, "fdopen", lambda fd, mode: HalfWritten(real_fdopen(fd, mode)))


def test_a_full_disk_leaves_no_partial_file_and_names_the_file(tmp_path, full_disk):
    path = tmp_path / "run" / "forward.json"
    with pytest.raises(OSError) as raised:
        write_json(path, {"test_accuracy": 97.0, "pad": "x" * 10_000})
    assert raised.value.errno == errno.ENOSPC
    assert f"cannot write {path}: No space left on device" in str(raised.value)
    assert not path.exists() and leftovers(path.parent) == []


def test_a_full_disk_leaves_the_previous_file_as_it_was(tmp_path, monkeypatch):
    path = write_text(tmp_path / "table2.csv", "old\n")
    monkeypatch.setattr(_io.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    with pytest.raises(OSError, match="cannot write .*table2.csv"):
        write_text(path, "new\n" * 1000)
    assert path.read_text() == "old\n" and leftovers(tmp_path) == []


def test_an_interrupt_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(_io.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_npy(tmp_path / "T_hat.npy", np.eye(3))
    assert list(tmp_path.iterdir()) == []


def test_writes_are_whole_and_readable_by_others_as_open_would_make_them(tmp_path):
    path = write_json(tmp_path / "a" / "b.json", {"x": [1, 2]})
    assert json.loads(path.read_text()) == {"x": [1, 2]}
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0o600
    assert np.array_equal(np.load(write_npy(tmp_path / "p.npy", np.arange(4.0))), np.arange(4.0))
    with pytest.raises(ValueError):  # strict JSON: nothing is written
        write_json(tmp_path / "nan.json", {"x": float("nan")})
    assert not (tmp_path / "nan.json").exists()


def test_an_unwritable_folder_is_an_error_of_the_same_kind(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError) as raised:  # a parent that is a file
        atomic_write(tmp_path / "file" / "x.json", b"{}")
    assert raised.value.errno in (errno.ENOTDIR, errno.EEXIST) and "cannot write" in str(raised.value)
