"""The report rule: Table 2 (CSV, Markdown) and the figures from the records of the configured runs.

A script rather than a `pyrobust report` call so that the report reads exactly the rule's input records,
each checked against the settings the workflow asked for (`params.expected`, in the order of
`input.results`), and writes exactly the rule's outputs (which a module's `prefix:` moves).
"""

import contextlib
import sys
import traceback
from pathlib import Path


def report(snakemake) -> None:
    if snakemake.params.env_check:  # --sdm conda: the environment's pyrobust must be the checkout's
        sys.path.insert(0, snakemake.scriptdir)
        from code_digest import check_environment

        problem = check_environment(snakemake.params.env_check)
        if problem:
            raise SystemExit(f"pyrobust: {problem}")
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


def main(snakemake) -> None:
    """Like `pyrobust report > {log} 2>&1`: the output and any error in the rule's log (the error also on
    Snakemake's own output)."""
    with open(snakemake.log[0], "w") as log:
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                report(snakemake)
        except BaseException as error:
            if not isinstance(error, SystemExit):
                traceback.print_exc(file=log)
            print(f"pyrobust report: error: {error}", file=log)
            raise


main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
