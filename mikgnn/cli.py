"""How the entry scripts (``pipelines/``) report a usage error: one line, exit code 2; and a
failure that is not the input's (Ray did not start): one line, exit code 1.

Bad input (a flag, a settings key, a search-space file, a dataset) is refused before Ray or
MLflow start, with one line that names the flag, or the file and key, and the value; no
traceback unless the script was given ``--debug``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import traceback
from pathlib import Path

USAGE = 2  # the exit code of a usage error


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")


def add_download_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--download", action="store_true",
                        help="fetch the dataset's missing raw files from their official addresses (checked "
                        "against the recorded sha256, unzipped where needed), once")


def typed_command() -> str:
    """This run's command as a user types it from the project's folder (``python pipelines/x.py
    ...``, not this machine's interpreter path): what a run records and a report prints."""
    return shlex.join(["python", f"pipelines/{Path(sys.argv[0]).name}", *sys.argv[1:]])


def usage_error(exc: BaseException, debug: bool = False) -> int:
    """Print ``exc`` as ``error: ...`` (with its traceback under --debug); the exit code."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: {exc}", file=sys.stderr)
    return USAGE


def failure(exc: BaseException, debug: bool = False) -> int:
    """Print ``exc`` as ``error: ...`` (with its traceback under --debug); exit code 1."""
    usage_error(exc, debug)
    return 1
