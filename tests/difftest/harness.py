"""Run cases through both tools, classify them, and summarise a run."""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import allow, gen, jobtext
from .compare import classify
from .model import AGREE, DISAGREE, INTERNAL, REFUSED, VERDICTS, Case, Result
from .run import run_tool


def run_case(case: Case, workdir: Path, iolab: list[str], timeout: float, keep: bool = False) -> Result:
    d = workdir / case.id
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / "job.fio").write_text(case.text)
    fio = None if case.skip_fio else run_tool("fio", case, d, iolab, timeout)
    lab = run_tool("iolab", case, d, iolab, timeout)
    res = classify(case, fio, lab)
    if not keep:
        # the run directories hold the data files; job, stdout and stderr stay for a look afterwards
        for tool in ("fio", "iolab"):
            shutil.rmtree(d / tool, ignore_errors=True)
        if res.verdict in (AGREE, REFUSED):
            shutil.rmtree(d, ignore_errors=True)
    return res


def run_all(
    cases: Iterable[Case],
    workdir: Path,
    iolab: list[str],
    timeout: float = 60.0,
    jobs: int = 1,
    entries: list[allow.Entry] | None = None,
    keep: bool = False,
    progress: Callable[[Result], None] | None = None,
) -> list[Result]:
    entries = entries if entries is not None else allow.load()

    def one(case: Case) -> Result:
        res = run_case(case, workdir, iolab, timeout, keep)
        allow.apply(res, entries)
        if progress:
            progress(res)
        return res

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, cases))


def summarize(results: list[Result]) -> dict[str, Any]:
    """Counts per verdict and source, and the disagreement categories (by field) with an example each."""
    counts = {v: 0 for v in VERDICTS}
    by_source: dict[str, Counter[str]] = {}
    for r in results:
        counts[r.verdict] += 1
        by_source.setdefault(r.case.source, Counter())[r.verdict] += 1
    categories: dict[str, dict[str, Any]] = {}
    all_opts = Counter(o for r in results for o in jobtext.options_used(r.case.text))
    for r in results:
        if r.verdict not in (DISAGREE, INTERNAL):
            continue
        for f in r.findings:
            key = f.field if r.verdict == DISAGREE else f"internal: {f.detail.split(':')[0]}"
            if f.field == "exit_code":
                key = f"exit_code: {_gist(f.detail)}"
            cat = categories.setdefault(key, {"cases": [], "listed": 0, "example": None})
            if r.case.id not in cat["cases"]:
                cat["cases"].append(r.case.id)
                if f.field in r.allowed_by:
                    cat["listed"] += 1
            if cat["example"] is None:
                cat["example"] = {"case": r.case.id, **f.as_dict(), "job": r.case.text}
    for cat in categories.values():
        # options much more common in this category's cases than in the whole run: likely causes
        ids = set(cat["cases"])
        opts = Counter(o for r in results if r.case.id in ids for o in jobtext.options_used(r.case.text))
        n = len(ids)
        cat["suspects"] = sorted(
            (o for o, c in opts.items() if c / n >= 0.6 and c / n - all_opts[o] / len(results) >= 0.3),
            key=lambda o: -opts[o],
        )[:6]
        cat["count"] = n
    refused = Counter(r.refused_by or "?" for r in results if r.verdict == REFUSED)
    unlisted = [r.case.id for r in results if r.unlisted]
    return {
        "counts": counts,
        "by_source": {s: dict(c) for s, c in by_source.items()},
        "unlisted_cases": unlisted,
        "categories": dict(sorted(categories.items(), key=lambda kv: -kv[1]["count"])),
        "refused_by": dict(refused.most_common()),
        "not_drawn": gen.drawable()[2],
    }


def _gist(message: str) -> str:
    """An error message without paths, job names and numbers, to group cases by cause."""
    m = re.sub(r"\S*job\.fio:\d+:\s*", "", message)
    m = re.sub(r"job '[^']*' \(\d+\)", "job", m)
    m = re.sub(r"\d+", "N", m)
    return m[:90]


def format_summary(summary: dict[str, Any], seconds: float) -> str:
    c = summary["counts"]
    lines = [
        f"difftest: {sum(c.values())} cases in {seconds:.0f}s: " + ", ".join(f"{v} {k}" for k, v in c.items())
    ]
    for src, sc in summary["by_source"].items():
        lines.append(f"  {src}: " + ", ".join(f"{v} {k}" for k, v in sorted(sc.items())))
    if summary["categories"]:
        lines.append("disagreement categories (field: cases, listed in docs/fio-differences.md):")
    for field, cat in summary["categories"].items():
        ex = cat["example"]
        sus = f"; suspects: {', '.join(cat['suspects'])}" if cat["suspects"] else ""
        lines.append(f"  {field}: {cat['count']} ({cat['listed']} listed){sus}")
        lines.append(f"    e.g. {ex['case']}: fio={ex['fio']!r} iolab={ex['iolab']!r} {ex['detail']}")
    if summary["refused_by"]:
        lines.append("refused by iolab: " + ", ".join(f"{k} ({v})" for k, v in summary["refused_by"].items()))
    if summary["unlisted_cases"]:
        lines.append(
            f"{len(summary['unlisted_cases'])} case(s) disagree beyond docs/fio-differences.md: "
            + " ".join(summary["unlisted_cases"][:30])
        )
    return "\n".join(lines)


def now() -> float:
    return time.monotonic()
