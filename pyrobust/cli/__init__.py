"""The ``pyrobust`` command: ``fetch``, ``corrupt``, ``train``, ``estimate``, ``report`` and ``clothing1m``.

A thin layer over the library and the experiment: it parses arguments, calls one function, and turns user
errors (a missing data set, a bad file, an unknown method) into a one-line message and exit status 2 (set
``PYROBUST_DEBUG=1`` to get the traceback instead). Each subcommand imports only what it needs; the
choices come from the torch-free catalogue (:mod:`pyrobust.registry`), so ``pyrobust --help`` imports no
torch. ``pyrobust clothing1m ARGS`` is ``python -m pyrobust.experiment.clothing1m ARGS``.

One job a module: :mod:`~pyrobust.cli.parser` (the arguments), :mod:`~.commands` (what each subcommand
does), :mod:`~.inputs` (reading the input files once, naming a bad one), :mod:`~.errors` (one-line user
errors); this one dispatches.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Sequence

from pyrobust.cli.commands import run_clothing1m
from pyrobust.cli.errors import message
from pyrobust.cli.parser import build_parser

__all__ = ["USAGE_ERROR", "build_parser", "main"]

#: Exit status for errors in the user's input (argparse uses the same).
USAGE_ERROR = 2


def _one_line_warning(command, message, category, filename, lineno, file=None, line=None) -> None:
    sys.stdout.flush()
    print(f"pyrobust {command}: warning: {message}", file=sys.stderr if file is None else file, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrobust`` console script; returns the exit status (0, or 2 for a user error;
    ``pyrobust clothing1m``: that command's status).

    A user error (a missing or malformed file, an unknown name, an invalid setting: ``OSError`` or
    ``ValueError``) prints one line ``pyrobust <command>: error: ...`` on stderr; set ``PYROBUST_DEBUG=1``
    to get the traceback instead. argparse errors exit through ``SystemExit(2)``.

    Raises:
        SystemExit: from argparse, for ``--help``, ``--version`` and malformed arguments.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, unparsed = parser.parse_known_args(argv)
    if args.command == "clothing1m":  # its own parser reads what follows the subcommand, unchanged
        return run_clothing1m(argv[argv.index("clothing1m") + 1 :])
    if unparsed:  # what parse_args does
        parser.error(f"unrecognized arguments: {' '.join(unparsed)}")
    try:
        with warnings.catch_warnings():
            # a warning about the user's inputs or results (an unreliable T_hat, ...) as one line, like errors
            warnings.showwarning = functools.partial(_one_line_warning, args.command)
            args.func(args)
    except (OSError, ValueError) as err:  # missing/bad files, unknown names, invalid settings
        # Only these: the readers of the inputs turn what a bad file raises into them (errors.reading), so
        # that any other exception is a bug and keeps its traceback.
        if os.environ.get("PYROBUST_DEBUG"):
            raise
        sys.stdout.flush()  # what was printed before comes first in a log of both streams
        print(f"pyrobust {args.command}: error: {message(err)}", file=sys.stderr)
        return USAGE_ERROR
    return 0
