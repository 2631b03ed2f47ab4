"""The report rule: Table 2 (CSV, Markdown) and the figures from the records of the configured runs.

A script rather than a `pyrobust report` call so that the report reads exactly the rule's input records,
each checked against the settings the workflow asked for (`params.expected`, in the order of
`input.results`), and writes exactly the rule's outputs (which a module's `prefix:` moves).
"""

import sys
from pathlib import Path


def report(snakemake) -> None:
    from pyrobust.experiment.report import write_reports

    output = snakemake.output
    written = write_reports(
        list(snakemake.input.results),
        Path(output.csv).parent,
        paper_csv=snakemake.input.paper,
        missing=snakemake.params.missing,
        expected=dict(zip(snakemake.input.results, snakemake.params.expected)),
        csv=output.csv,
        markdown=output.md,
        figures=output.figures,
        estimators=output.estimators,
    )
    for path in written.values():
        print(f"wrote {path}")


sys.path.insert(0, snakemake.scriptdir)  # noqa: F821 (injected by Snakemake's script directive)
from script_frame import run_in_log  # noqa: E402

run_in_log(snakemake, "report", report)  # noqa: F821
