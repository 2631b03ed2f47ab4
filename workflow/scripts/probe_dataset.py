"""Record whether a data set can be loaded (after fetching it when configured) without failing the run.

A script rather than a `pyrobust` call because "absent" must be an outcome here, not an error: the
workflow leaves an unavailable default data set out of Table 2 and lists it as missing.
"""

import logging
import sys

from pyrobust._io import write_json
from pyrobust.data import DatasetNotAvailable, fetch, load


def probe(dataset: str, data_root: str, fetch_missing: bool, base_url: str | None) -> dict:
    try:
        if fetch_missing:
            fetch(dataset, data_root, base_url=base_url, progress=False)
        load(dataset, data_root)
    except (DatasetNotAvailable, OSError) as error:  # OSError: the download failed (URLError, timeout)
        return {"dataset": dataset, "available": False, "message": f"{type(error).__name__}: {error}"}
    return {"dataset": dataset, "available": True, "message": None}


def main(snakemake) -> None:
    logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(message)s")
    params = snakemake.params
    status = probe(snakemake.wildcards.dataset, params.data_root, params.fetch, params.base_url)
    if status["available"]:
        logging.info("%s: available in %s", status["dataset"], params.data_root)
    else:
        logging.warning("%s: left out of Table 2: %s", status["dataset"], status["message"])
        print(f"pyrobust: data set {status['dataset']} left out: {status['message']}", file=sys.stderr)
    write_json(snakemake.output[0], status)


main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
