"""Download the data sets: canonical URLs, pinned SHA-256 checksums, atomic writes, resumable transfers.

``fetch(name)`` puts the files of data set ``name`` in ``<data root>/<name>/`` under their canonical names.
A file is first written to ``<file>.part`` and moved to its final name (``os.replace``) only once its
checksum matches, so a half or corrupted download is never visible under the final name. An interrupted
transfer leaves the ``.part`` behind; the next ``fetch`` resumes it with an HTTP ``Range`` request, or starts
over when the server ignores ranges.

The pinned checksums are the SHA-256 of the canonical files, the values Keras (``imdb.npz``, CIFAR) and
many other dataset loaders pin; ``checksums=`` overrides them, e.g. for a mirror holding other files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from pyrobust.data._common import DatasetNotAvailable, data_root, sha256_file
from pyrobust.entries import Remote
from pyrobust.registry import get_dataset

#: Environment variable with a base URL replacing the canonical one (a mirror); files are ``<base>/<file>``.
BASE_URL_ENV = "PYROBUST_DATA_URL"

#: Seconds to wait for a connection or for the next bytes before giving up (fail fast when offline).
DEFAULT_TIMEOUT = 10.0

_CHUNK = 1 << 16


def remotes(name: str) -> tuple[Remote, ...]:
    """The downloadable files of data set ``name``, from the catalogue (:mod:`pyrobust.catalog`).

    ``name`` may also be a set of label files that is no data set of its own
    (:data:`pyrobust.catalog.LABEL_FILES`: ``cifar10n``, ``cifar100n``).

    Raises:
        ValueError: unknown data set, or one with nothing to download (it ships inside a package).
    """
    files, embedded = _entry(name)
    if not files:
        raise ValueError(f"data set {name!r} has no files to download"
                         + (" (it ships inside an installed package)" if embedded else ""))
    return files


def _entry(name: str) -> tuple[tuple[Remote, ...], bool]:
    """``(files, embedded)`` of the registered data set ``name``, else of the label files ``name``."""
    from pyrobust.catalog import LABEL_FILES

    try:
        info = get_dataset(name)
    except ValueError as err:
        if isinstance(name, str) and name in LABEL_FILES:
            return LABEL_FILES[name], False
        raise ValueError(f"{err} (label files: {', '.join(LABEL_FILES)})") from None
    return info.files, info.embedded


class DownloadError(OSError):
    """A download failed (HTTP error, interrupted transfer); the message names the URL and what to do."""


class ChecksumMismatch(DownloadError):
    """A file's SHA-256 is not the pinned one; the message names the file and both hashes."""


class _Unreachable(Exception):
    """The server could not be reached at all (offline, DNS failure, refused, timed out)."""


def dataset_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Where ``fetch(name)`` puts the files of data set ``name``: ``<data root>/<name>``."""
    return data_root(root) / name


def placement_hint(name: str, root: str | os.PathLike[str] | None = None) -> str:
    """Say which files to download by hand, from where, and where to put them."""
    lines = "\n".join(f"  {r.filename}  from {r.url}  (sha256 {r.sha256})" for r in remotes(name))
    return (f"Run `pyrobust fetch {name}` (or load(..., download=True)), or download by hand and place in "
            f"{dataset_dir(name, root)}/:\n{lines}")


def fetch(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    base_url: str | None = None,
    progress: bool = True,
    checksums: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Path]:
    """Download the files of data set ``name`` into ``<data root>/<name>/`` and return their paths.

    ``name`` is a registered data set or a set of label files (:data:`pyrobust.catalog.LABEL_FILES`:
    ``cifar10n``, ``cifar100n``, the CIFAR-N human labels).

    ``base_url`` (else ``$PYROBUST_DATA_URL``) replaces the canonical location: each file is then fetched
    from ``<base_url>/<filename>``. ``checksums`` maps file names to SHA-256 hex digests replacing the
    pinned ones (for mirrors of other files, and tests). A file already present is verified, not
    downloaded again. ``progress`` shows a tqdm bar (only on a terminal).

    Raises ``DatasetNotAvailable`` when the server cannot be reached within ``timeout`` seconds (the
    message says which files to place where), ``DownloadError`` on an HTTP error or an interrupted
    transfer (the ``.part`` file is kept, so fetching again resumes), and ``ChecksumMismatch`` when a
    download or an existing file has the wrong SHA-256 (a download is deleted; an existing file is left for
    you to inspect).
    """
    _, embedded = _entry(name)  # ValueError for an unknown name, listing the known ones
    if embedded:
        return []  # ships inside an installed package: nothing to download
    base_url = base_url or os.environ.get(BASE_URL_ENV) or None
    directory = dataset_dir(name, root)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for remote in remotes(name):
        url = f"{base_url.rstrip('/')}/{remote.filename}" if base_url else remote.url
        expected = (checksums or {}).get(remote.filename, remote.sha256).lower()
        path = directory / remote.filename
        if path.exists():
            actual = sha256_file(path)
            if actual != expected:
                raise ChecksumMismatch(
                    f"{path} already exists but its SHA-256 is {actual}, expected {expected}: delete it and "
                    f"fetch again, or replace it by the file from {remote.url}"
                )
        else:
            try:
                _download(url, path, expected, progress=progress, timeout=timeout)
            except _Unreachable as err:
                raise DatasetNotAvailable(f"cannot download {name}: {err}\n{placement_hint(name, root)}") from None
        paths.append(path)
    return paths


def _download(url: str, dest: Path, sha256: str, *, progress: bool, timeout: float) -> None:
    """Fetch ``url`` into ``dest`` through ``dest.part``, resuming a ``.part`` left by an earlier try."""
    import http.client
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "pyrobust-fetch"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:  # the .part is not a prefix the server can continue: start over
            part.unlink()
            return _download(url, dest, sha256, progress=progress, timeout=timeout)
        raise DownloadError(f"downloading {dest.name} from {url} failed: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise _Unreachable(f"{url} is unreachable ({getattr(err, 'reason', err)})") from None
    except http.client.HTTPException as err:  # the server answered, but not with HTTP
        raise DownloadError(f"downloading {dest.name} from {url} failed: {type(err).__name__} {err}") from None

    with response:
        resumed = offset > 0 and response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            raise DownloadError(f"downloading {dest.name} from {url}: the server answered the resume request "
                                f"with Content-Range {response.headers.get('Content-Range')!r}; delete {part}")
        if not resumed:
            offset = 0  # no range support (200): restart cleanly
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        received = offset
        with open(part, "ab" if resumed else "wb") as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
            disable=not (progress and sys.stderr.isatty()), leave=False,
        ) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as err:
                raise DownloadError(f"downloading {dest.name} from {url} was interrupted after {received} "
                                    f"bytes ({err}); {part} is kept: fetch again to resume") from None
            f.flush()
            os.fsync(f.fileno())
    if total is not None and received != total:
        raise DownloadError(f"downloading {dest.name} from {url} ended after {received} of {total} bytes; "
                            f"{part} is kept: fetch again to resume")

    actual = sha256_file(part)
    if actual != sha256:
        part.unlink()
        raise ChecksumMismatch(f"{dest.name} downloaded from {url} has SHA-256 {actual}, expected {sha256}; "
                               "the download was deleted")
    os.replace(part, dest)
