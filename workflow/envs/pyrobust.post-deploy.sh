#!/usr/bin/env bash
# Run by Snakemake (`--sdm conda`) right after it creates the environment of pyrobust.yaml, with that
# environment active: build pyrobust from the checkout that holds this workflow (PYROBUST_CHECKOUT, set by
# workflow/rules/common.smk) against the environment's torch, install it, and record which sources it
# was built from (the jobs compare that with the checkout; workflow/scripts/code_digest.py).
#
# The build runs on a copy of the sources: building in the checkout would replace the compiled extension
# of the checkout's own environment (pip install -e) with one for this environment's torch.
set -euo pipefail

checkout="${PYROBUST_CHECKOUT:?the pyrobust checkout to install (set by the workflow for --sdm conda)}"
prefix="${CONDA_PREFIX:?run inside the conda environment to install into}"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT

tar -C "$checkout" --exclude=__pycache__ --exclude='*.so' --exclude='*.pyd' --exclude='*.egg-info' \
    -cf - setup.py pyproject.toml README.md pyrobust kernels | tar -C "$build" -xf -
# The dependencies come from conda (pyrobust.yaml): pip installs pyrobust alone, from nowhere but here.
python -m pip install --no-deps --no-build-isolation --no-index "$build"
mkdir -p "$prefix/share/pyrobust"
python "$checkout/workflow/scripts/code_digest.py" "$build" > "$prefix/share/pyrobust/sources.sha256"
