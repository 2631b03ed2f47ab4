"""The Clothing1M report rule: Table 3 (CSV, Markdown) from the records of the configured runs, beside the
paper's numbers (pyrobust.experiment.table3). It reads exactly the rule's input records and writes exactly
its outputs (which a module's `prefix:` moves)."""

import contextlib
import sys
import traceback


def report(snakemake) -> None:
    if snakemake.params.env_check:  # --sdm conda: the environment's pyrobust must be the checkout's
        sys.path.insert(0, snakemake.scriptdir)
        from code_digest import check_environment

        problem = check_environment(snakemake.params.env_check)
        if problem:
            raise SystemExit(f"pyrobust: {problem}")
    from pyrobust.experiment.table3 import write_table3

    written = write_table3(
        dict(zip(snakemake.params.runs, snakemake.input.records)),
        snakemake.output.csv,
        snakemake.output.md,
        paper_csv=snakemake.input.paper,
        init_from=snakemake.params.init_from,
    )
    for path in written.values():
        print(f"wrote {path}")


def main(snakemake) -> None:
    """The output and any error in the rule's log (the error also on Snakemake's own output)."""
    with open(snakemake.log[0], "w") as log:
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                report(snakemake)
        except BaseException as error:
            if not isinstance(error, SystemExit):
                traceback.print_exc(file=log)
            print(f"pyrobust table3: error: {error}", file=log)
            raise


main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
