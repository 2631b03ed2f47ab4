"""The Clothing1M report rule: Table 3 (CSV, Markdown) from the records of the configured runs, beside the
paper's numbers (pyrobust.experiment.table3). It reads exactly the rule's input records and writes exactly
its outputs (which a module's `prefix:` moves)."""

import sys


def report(snakemake) -> None:
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


sys.path.insert(0, snakemake.scriptdir)  # noqa: F821 (injected by Snakemake's script directive)
from script_frame import run_in_log  # noqa: E402

run_in_log(snakemake, "table3", report)  # noqa: F821
