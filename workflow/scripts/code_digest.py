"""Digests of the pyrobust code that the workflow's results depend on.

- :func:`training_digest`, a param of every job that trains or prepares training data, so that a change
  reruns them: pyrobust's Python sources (less the reporting code), the kernel sources of the checkout the
  package sits in (``kernels/**``, compiled into ``pyrobust._C``; absent from an installed package) and
  the bytes of the built extension ``pyrobust._C`` where there is one (what actually runs: a rebuild with
  another compiler or torch reruns too).
- :func:`sources_digest`, the sources of a checkout (``pyrobust/**/*.py`` and ``kernels/**``): the stamp
  with which a ``--sdm conda`` environment records what it was built from
  (workflow/envs/pyrobust.post-deploy.sh), checked by the jobs against the checkout.

Standard library only, and nothing of pyrobust is imported here: the extension is found with
``importlib.util.find_spec`` (no torch).

Command line: ``python code_digest.py CHECKOUT`` prints ``sources_digest(CHECKOUT)``; ``python
code_digest.py --check DIGEST`` (a job's first step under ``--sdm conda``) exits 1, saying what to do,
unless the active conda environment was built from sources of that digest.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["STAMP", "check_environment", "extension_file", "kernel_folder", "sources_digest", "training_digest"]

#: Where, in a conda environment, the post-deploy script records the digest of the sources it built.
STAMP = "share/pyrobust/sources.sha256"

#: Files of the package whose change reruns training (the compiled extension is hashed on its own).
PACKAGE_SUFFIXES = (".py", ".cpp", ".h", ".cu", ".cuh")


def _digest(entries: Iterable[tuple[str, Path]]) -> str:
    digest = hashlib.sha256()
    for name, path in entries:
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _files(root: Path, suffixes: tuple[str, ...] | None = None) -> list[tuple[str, Path]]:
    """(name relative to `root`, path) of the files under `root`, sorted; caches and temporary files left out."""
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if not path.is_file() or "__pycache__" in relative.parts or path.name.endswith((".pyc", ".tmp")):
            continue
        if suffixes is None or path.suffix in suffixes:
            files.append((relative.as_posix(), path))
    return sorted(files)


def kernel_folder(package: Path) -> Path | None:
    """``kernels/`` of the checkout that holds `package` (``<checkout>/pyrobust``), or None (an installed package)."""
    kernels = Path(package).parent / "kernels"
    return kernels if (kernels / "ops.cpp").is_file() else None


def extension_file(name: str = "pyrobust._C") -> Path | None:
    """The built extension module's file, as Python would import it (its package is imported, not torch)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    return Path(spec.origin)


def training_digest(package: Path, exclude: Iterable[str] = (), extension: Path | None = None) -> str:
    """The code a training job runs: `package`'s sources (less `exclude`, paths relative to the package such
    as ``experiment/report.py``), its checkout's ``kernels/**`` and the bytes of `extension`."""
    package = Path(package)
    exclude = set(exclude)
    entries = [(f"pyrobust/{name}", path) for name, path in _files(package, PACKAGE_SUFFIXES) if name not in exclude]
    kernels = kernel_folder(package)
    if kernels is not None:
        entries += [(f"kernels/{name}", path) for name, path in _files(kernels)]
    if extension is not None:
        entries.append(("extension", Path(extension)))
    return _digest(entries)


def sources_digest(checkout: Path) -> str:
    """The sources of a checkout: ``pyrobust/**/*.py`` and ``kernels/**`` (no build products)."""
    checkout = Path(checkout)
    entries = [(f"pyrobust/{name}", path) for name, path in _files(checkout / "pyrobust", (".py",))]
    entries += [(f"kernels/{name}", path) for name, path in _files(checkout / "kernels")]
    return _digest(entries)


def check_environment(expected: str, prefix: str | os.PathLike | None = None) -> str | None:
    """None if the environment at `prefix` (default ``$CONDA_PREFIX``) holds pyrobust built from sources of
    digest `expected`, else what is wrong and what to do."""
    prefix = prefix or os.environ.get("CONDA_PREFIX")
    if not prefix:
        return "no conda environment is active (CONDA_PREFIX is not set)"
    stamp = Path(prefix) / STAMP
    recorded = stamp.read_text().strip() if stamp.is_file() else None
    if recorded == expected:
        return None
    return (
        f"the conda environment {prefix} holds pyrobust built from other sources ({recorded or 'unknown'}) "
        f"than the checkout's ({expected}): pyrobust changed since the environment was made. Delete it "
        f"(rm -rf {prefix}) and Snakemake builds it again from the checkout."
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check"]:
        problem = check_environment(sys.argv[2])
        if problem:
            sys.exit(f"pyrobust: {problem}")
    else:
        print(sources_digest(Path(sys.argv[1])))
