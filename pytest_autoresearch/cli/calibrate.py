"""``autoresearch calibrate``: measure this host's noise floor with A/A runs, then report it.

It starts ``pytest --autoresearch --autoresearch-calibrate N`` here, so every draw takes the one
run path a verdict takes (runner, lease, budget, sandbox, frozen scorer) and lands in the ledger
as a draw of its commit; the report is then read back from those ledger rows
(:mod:`pytest_autoresearch.calibration`), the same rows the noise floor learns from.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys

from .. import calibration
from ..noise import CALIBRATE
from .night import strict
from .views import PROG
from .where import CliError, locate, read_runs

DEFAULT_PAIRS = 8


def cmd_calibrate(args: argparse.Namespace) -> int:
    where = locate(args.ledger)
    before = {r.run_id for r in read_runs(where.ledger)} if where.ledger.is_file() else set()
    command = [sys.executable, "-m", "pytest", "--autoresearch", f"--autoresearch-calibrate={args.pairs}",
               *(["--autoresearch-ledger", str(args.ledger)] if args.ledger else []), *args.pytest_args]
    print(f"{PROG}: {' '.join(command[1:])}", file=sys.stderr)
    sys.stdout.flush()
    ran = subprocess.run(command, stdout=sys.stderr if args.json else None, check=False)
    runs = read_runs(where.ledger) if where.ledger.is_file() else []
    ids = list(dict.fromkeys(str(r.extra[calibration.KEY]) for r in runs
                             if r.run_id not in before and calibration.KEY in r.extra))
    if not ids:
        raise CliError(f"the calibration recorded no draws (pytest exited with code {ran.returncode}; "
                       "its output above says why)")
    try:
        found = calibration.reports(runs, ids)
    except ValueError as exc:
        raise CliError(f"no report: {exc} (pytest exited with code {ran.returncode})") from None
    if args.json:
        print(json.dumps(strict({"host": socket.gethostname(), "pytest_exit": ran.returncode,
                                 "calibrations": [r.to_json() for r in found]}), indent=2, allow_nan=False))
    else:
        for report in found:
            print("\n".join(["", *report.lines()]))
        print(f"\nthese draws are the noise floor of {socket.gethostname()} now: autoresearch status shows it; "
              f"verdicts on this host use it (run {CALIBRATE} again after the machine changes)")
    return 0 if ran.returncode == 0 else 1
