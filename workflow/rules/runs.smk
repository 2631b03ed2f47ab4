"""Shared by the rule files. Where the workflow writes, the shape of its wildcards, the seeds and
settings of each data set, and the digests of the pyrobust code its jobs run.

Shared helpers live here rather than in the first rule file that needs them because `snakemake --lint`
asks that a file with rules define no functions ("Mixed rules and functions in same snakefile").
"""

import hashlib
from pathlib import Path

import pyrobust
from pyrobust.catalog import NETWORKS, NOISE_KINDS

RESULTS = config["results_dir"]
REPORTS = config["reports_dir"]
LOGS = "logs"

# One run, i.e. one Table 2 cell of one seed: its result records (<method>.json), T-hat, and its logs.
RUN = f"{RESULTS}/{{dataset}}/{{model}}/{{noise}}-{{N}}/seed{{seed}}"
RUN_LOG = f"{LOGS}/{{dataset}}/{{model}}/{{noise}}-{{N}}/seed{{seed}}"


wildcard_constraints:
    dataset="|".join(sorted(config["dataset_settings"])),
    noise="|".join(NOISE_KINDS),
    N=r"[0-9]+(\.[0-9]+)?",
    seed=r"[0-9]+",
    model="|".join(NETWORKS),


def dataset_setting(dataset, key):
    """A data set's setting, with the global overrides (`seeds`, `epochs`) taking precedence."""
    if key in ("seeds", "epochs") and config[key] is not None:
        return config[key]
    return config["dataset_settings"][dataset][key]


def seeds(dataset):
    """The seeds of a data set's runs: a count n means 0..n-1."""
    value = dataset_setting(dataset, "seeds")
    return list(range(value)) if isinstance(value, int) else list(value)


def format_N(N):
    """The noise level as it appears in paths and on the command line: 0, 0.2, 0.6, ..."""
    return f"{float(N):g}"


def source_digest(exclude=()):
    """SHA-256 of pyrobust's source files: a param that reruns the jobs they produce when the code changes.

    `exclude`: paths relative to the package (`experiment/report.py`), so that a name used twice in the
    package excludes only the module meant.
    """
    root = Path(pyrobust.__file__).parent
    digest = hashlib.sha256()
    sources = sorted(
        p
        for suffix in ("*.py", "*.cpp", "*.h", "*.cu", "*.cuh")
        for p in root.rglob(suffix)
    )
    for path in sources:
        relative = path.relative_to(root).as_posix()
        if relative in exclude:
            continue
        digest.update(relative.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# The reporting code: a change there reruns the report, not the training. (report.py is the module it
# came from, in case it stays behind as a shim.)
REPORT_SOURCES = (
    "experiment/records.py",
    "experiment/table.py",
    "experiment/markdown.py",
    "experiment/figures.py",
    "experiment/report.py",
    "plots.py",
    "report.py",
)
TRAINING_CODE = source_digest(exclude=REPORT_SOURCES)
REPORT_CODE = source_digest()
