"""python -m tests.difftest: run generated jobs and fio's examples through fio and iolab."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from . import allow, examples, gen, harness
from .model import DISAGREE, INTERNAL, Result
from .run import default_iolab


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.difftest", description=__doc__)
    ap.add_argument("--seed", type=int, default=1, help="seed of the job generator (default 1)")
    ap.add_argument("--cases", type=int, default=60, help="generated jobs (default 60; 0: none)")
    ap.add_argument("--examples", action="store_true", help="also run every fio example job file")
    ap.add_argument("--only", action="append", default=[], metavar="ID", help="run only these case ids")
    ap.add_argument("--report", type=Path, help="write every result and the summary as JSON here")
    ap.add_argument("--workdir", type=Path, help="keep case directories here (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the run directories with their files")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per tool run (default 60)")
    ap.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    ap.add_argument("--iolab", default=None, help="iolab command (default: .venv/bin/iolab)")
    ap.add_argument("--doc", type=Path, default=allow.DOC, help="the known-differences document")
    ap.add_argument("--show", action="store_true", help="print the cases' job files and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    args = ap.parse_args(argv)

    cases = gen.generate(args.seed, args.cases) if args.cases > 0 else []
    if args.examples:
        cases += examples.example_cases()
    if args.only:
        cases = [c for c in cases if c.id in args.only]
    if args.show:
        for c in cases:
            print(f"# {c.id}" + (f" (fio not run: {c.skip_fio})" if c.skip_fio else ""))
            print(c.text)
        return 0
    entries = allow.load(args.doc)
    iolab = shlex.split(args.iolab) if args.iolab else default_iolab()

    def progress(r: Result) -> None:
        if args.verbose or r.verdict in (DISAGREE, INTERNAL):
            fields = ",".join(
                f.field + ("" if f.field not in r.allowed_by else "(listed)") for f in r.findings
            )
            print(f"{r.case.id:<28} {r.verdict:<14} {fields or r.refused_by or ''}", flush=True)

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="difftest-") as tmp:
        workdir = args.workdir or Path(tmp)
        results = harness.run_all(
            cases, workdir, iolab, args.timeout, args.jobs, entries, args.keep, progress
        )
    summary = harness.summarize(results)
    print(harness.format_summary(summary, time.monotonic() - t0))
    if args.report:
        args.report.write_text(
            json.dumps(
                {"seed": args.seed, "summary": summary, "results": [r.as_dict() for r in results]}, indent=1
            )
        )
    return 1 if summary["unlisted_cases"] else 0


if __name__ == "__main__":
    sys.exit(main())
