"""What the workflow's report scripts do around their work, like `pyrobust <command> > {log} 2>&1`: the
output and any error in the rule's log (the error also on Snakemake's own output), after checking, with
`--sdm conda`, that the environment's pyrobust is the checkout's (`params.env_check`)."""

import contextlib
import traceback

from code_digest import check_environment


def run_in_log(snakemake, command, work) -> None:
    """Call `work(snakemake)` with stdout and stderr in the rule's log; an error is written there as
    `pyrobust <command>: error: ...` (with the traceback, unless it is a SystemExit) and raised again."""
    with open(snakemake.log[0], "w") as log:
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                if snakemake.params.env_check:
                    problem = check_environment(snakemake.params.env_check)
                    if problem:
                        raise SystemExit(f"pyrobust: {problem}")
                work(snakemake)
        except BaseException as error:
            if not isinstance(error, SystemExit):
                traceback.print_exc(file=log)
            print(f"pyrobust {command}: error: {error}", file=log)
            raise
