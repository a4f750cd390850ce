"""Compare what fio and iolab did with one case and classify it."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from iolab.options import ENGINES, lookup

from . import jobtext
from .model import AGREE, DISAGREE, INTERNAL, REFUSED, Case, Finding, Observation, Result

DIRS = ("read", "write", "trim")
_REFUSAL_WORDS = re.compile(r"not supported|not implemented|unsupported|refus", re.I)


def error_line(*texts: str) -> str:
    """The tool's error: its first unindented 'iolab:'/'fio:' line that is not a warning."""
    lines = [ln.rstrip() for t in texts for ln in t.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("iolab:", "fio:")) and "warning" not in ln and "laid out" not in ln:
            return ln.strip()
    for ln in lines:
        if "error" in ln.lower() and not ln.startswith(" "):
            return ln.strip()
    return lines[-1].strip() if lines else ""


def refused_feature(message: str) -> str | None:
    """The unsupported option or engine iolab's error names, or None if it names no refusal."""
    names = re.findall(r"option '([^']+)'", message)
    names += re.findall(r"\b([a-z][a-z0-9_-]*)=", message)
    names += re.findall(r"'([a-z][a-z0-9_-]*)'", message)
    for n in names:
        opt = lookup(n)
        if opt is not None and not opt.supported:
            return n
    m = re.search(r"ioengine '?([a-z0-9_-]+)'? is not supported", message) or re.search(
        r"ioengine=([a-z0-9_-]+)", message
    )
    if m and m.group(1) in ENGINES and ENGINES[m.group(1)].runs_as is None:
        return f"ioengine={m.group(1)}"
    if _REFUSAL_WORDS.search(message):
        m = re.search(r"\b([a-z][a-z0-9_]*=[^\s;,]+)", message)
        if m:
            return m.group(1)
        known = [n for n in names if lookup(n) is not None]
        return known[0] if known else "unnamed feature"
    return None


def internal_error(obs: Observation) -> str | None:
    if obs.timed_out:
        return f"timed out after {obs.seconds:.0f}s"
    if "Traceback (most recent call last)" in obs.stderr:
        tail = [ln for ln in obs.stderr.splitlines() if ln.strip()]
        return "traceback: " + (tail[-1] if tail else "")
    if obs.rc not in (0, 1):
        return f"exit status {obs.rc}" + (" (killed by a signal)" if obs.rc < 0 else "")
    if obs.rc == 0 and obs.json is None:
        return "exit 0 but stdout is not a JSON document"
    return None


def key_paths(obj: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON document; list elements share '[]'; iolab's own keys are left out."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "iolab":
                continue
            p = f"{prefix}.{k}" if prefix else k
            out.add(p)
            out |= key_paths(v, p)
    elif isinstance(obj, list):
        for v in obj:
            out |= key_paths(v, prefix + "[]")
    return out


def _short(values: list[str], limit: int = 12) -> list[str]:
    return values if len(values) <= limit else [*values[:limit], f"... {len(values) - limit} more"]


def _dir_counts(job: dict[str, Any], d: str) -> tuple[int, int]:
    part = job.get(d) or {}
    return int(part.get("io_bytes", 0)), int(part.get("total_ios", 0))


def compare_jobs(case: Case, fj: dict[str, Any], lj: dict[str, Any], res: Result) -> None:
    fjobs, ljobs = fj.get("jobs", []), lj.get("jobs", [])
    fnames = [(j.get("jobname"), j.get("groupid")) for j in fjobs]
    lnames = [(j.get("jobname"), j.get("groupid")) for j in ljobs]
    if fnames != lnames:
        res.findings.append(Finding("jobs", fnames, lnames, "job names and groups, in order"))
        return
    infos = {}
    for info in jobtext.jobs(case.text):
        infos.setdefault(info.name, info)
    for fjob, ljob in zip(fjobs, ljobs, strict=True):
        name = str(fjob.get("jobname"))
        info = infos.get(name) or jobtext.JobInfo(name, {})
        fc = {d: _dir_counts(fjob, d) for d in DIRS}
        lc = {d: _dir_counts(ljob, d) for d in DIRS}
        if info.stoppable:
            # another job's exitall may stop this one before its first I/O
            res.skipped_compares.append(f"io counts of {name}: exitall in the file, not compared")
            continue
        if info.timed or info.random_runs:
            why = "timed job" if info.timed else "random job with sequential runs (rw=rand...:N)"
            res.skipped_compares.append(f"io counts of {name}: {why}, only active directions compared")
            fa = [d for d in DIRS if fc[d][0] > 0]
            la = [d for d in DIRS if lc[d][0] > 0]
            if info.mixed:
                # a few I/Os of a mixed job may all go one way: the random sequence decides
                fa, la = ["any"] if fa else [], ["any"] if la else []
            if fa != la:
                res.findings.append(Finding("io.active", fa, la, f"job {name}: directions with I/O"))
            continue
        ftotal, ltotal = sum(v[0] for v in fc.values()), sum(v[0] for v in lc.values())
        if info.varied_bs:
            # where a file's last block ends (cut, shortened or past the end) depends on the sizes drawn
            res.skipped_compares.append(f"bytes of {name}: random block sizes, compared within 5% + 64 KiB")
            if abs(ftotal - ltotal) > 0.05 * max(ftotal, ltotal) + 65536:
                res.findings.append(
                    Finding("io.total_bytes", ftotal, ltotal, f"job {name} (random block sizes)")
                )
        elif ftotal != ltotal:
            res.findings.append(Finding("io.total_bytes", ftotal, ltotal, f"job {name}"))
        fios, lios = sum(v[1] for v in fc.values()), sum(v[1] for v in lc.values())
        if info.varied_bs:
            # two independent draws of the sizes: with bssplit's few large blocks (JESD219: 3% of 64k in 4
            # jobs of 1 MiB) the counts of two runs differ by over 20% about once in 100 runs, by 30%
            # about once in 10000 (simulated)
            res.skipped_compares.append(f"total_ios of {name}: random block sizes, compared within 30%")
            if abs(fios - lios) > 0.3 * max(fios, lios) + 3:
                res.findings.append(Finding("io.total_ios", fios, lios, f"job {name} (random block sizes)"))
        elif fios != lios:
            res.findings.append(Finding("io.total_ios", fios, lios, f"job {name}"))
        if info.mixed:
            # Which I/O reads and which writes comes from the random sequence; fio's is not iolab's.
            res.skipped_compares.append(f"read/write split of {name}: random, compared statistically")
            try:
                p = int(info.opts.get("rwmixread", "") or 100 - int(info.opts.get("rwmixwrite", "50")))
            except ValueError:
                p = 50
            p = min(max(p, 0), 100) / 100
            n = (fios + lios) / 2
            tol = 6 * math.sqrt(n * p * (1 - p)) + 2 + (0.2 * n if info.varied_bs else 0)
            if abs(fc["read"][1] - lc["read"][1]) > tol:
                res.findings.append(
                    Finding(
                        "io.read.total_ios",
                        fc["read"][1],
                        lc["read"][1],
                        f"job {name}: reads of a mixed job, beyond {tol:.0f} I/Os",
                    )
                )
            continue
        fs, ls = _dir_counts(fjob, "sync")[1], _dir_counts(ljob, "sync")[1]
        if fs != ls:
            res.findings.append(Finding("io.sync.total_ios", fs, ls, f"job {name}: fsync/fdatasync calls"))
        for d in DIRS:
            if fc[d][0] != lc[d][0] and not info.varied_bs:
                res.findings.append(Finding(f"io.{d}.io_bytes", fc[d][0], lc[d][0], f"job {name}"))
            if not info.varied_bs and fc[d][1] != lc[d][1]:
                res.findings.append(Finding(f"io.{d}.total_ios", fc[d][1], lc[d][1], f"job {name}"))


def compare_files(case: Case, fio: Observation, lab: Observation, res: Result) -> None:
    flogs = sorted(n for n in fio.files if n.endswith(".log"))
    llogs = sorted(n for n in lab.files if n.endswith(".log"))
    if flogs != llogs:
        res.findings.append(Finding("logs", _short(flogs), _short(llogs), "log files written"))
    fnames = {n for n in fio.files if not n.endswith(".log")}
    lnames = {n for n in lab.files if not n.endswith(".log")}
    if fnames != lnames:
        res.findings.append(
            Finding(
                "files.names",
                _short(sorted(fnames - lnames)),
                _short(sorted(lnames - fnames)),
                "files only one tool left",
            )
        )
    sizes = [
        (n, fio.files[n][0], lab.files[n][0])
        for n in sorted(fnames & lnames)
        if fio.files[n][0] != lab.files[n][0]
    ]
    if sizes:
        res.findings.append(
            Finding(
                "files.size",
                {n: a for n, a, _ in sizes[:8]},
                {n: b for n, _, b in sizes[:8]},
                f"{len(sizes)} file(s) differ in size",
            )
        )
    infos = jobtext.jobs(case.text)
    if any(i.rng_coverage for i in infos):
        res.skipped_compares.append("blocks: a write job's coverage depends on the random sequence or clock")
        return
    diff = [
        n
        for n in sorted(fnames & lnames)
        if fio.files[n][1] is not None
        and lab.files[n][1] is not None
        and fio.files[n][0] == lab.files[n][0]
        and fio.files[n][1] != lab.files[n][1]
    ]
    if diff:
        n = diff[0]
        res.findings.append(
            Finding(
                "blocks",
                str(fio.files[n][1])[:200],
                str(lab.files[n][1])[:200],
                f"non-zero 512-byte sectors of {n} ({len(diff)} file(s) differ)",
            )
        )


def compare_keys(case: Case, fj: dict[str, Any], lj: dict[str, Any], res: Result) -> None:
    fj, lj = copy.deepcopy(fj), copy.deepcopy(lj)
    for fjob, ljob in zip(fj.get("jobs", []), lj.get("jobs", []), strict=False):
        for d in (*DIRS, "sync"):
            if (_dir_counts(fjob, d)[1] > 0) != (_dir_counts(ljob, d)[1] > 0):
                # percentiles come with samples; the I/O counts were compared (or are random) above
                for job in (fjob, ljob):
                    for stat in (job.get(d) or {}).values():
                        if isinstance(stat, dict):
                            stat.pop("percentile", None)
    fk, lk = key_paths(fj), key_paths(lj)
    if any(i.timed for i in jobtext.jobs(case.text)):
        # percentiles are printed only for a direction with samples, and with a ramp or a runtime
        # cut the clock decides whether there are any
        res.skipped_compares.append("percentile keys: a timed job's samples depend on the clock")
        fk = {k for k in fk if ".percentile" not in k}
        lk = {k for k in lk if ".percentile" not in k}
    # the echo of the job's options apart from the statistics: different causes, different entries
    for field, pick in (("json_keys.options", True), ("json_keys", False)):
        f_only = sorted(k for k in fk - lk if _is_options_key(k) == pick)
        l_only = sorted(k for k in lk - fk if _is_options_key(k) == pick)
        if f_only or l_only:
            res.findings.append(
                Finding(
                    field,
                    _short(f_only),
                    _short(l_only),
                    "JSON keys only one tool printed (iolab's own keys left out)",
                )
            )


def _is_options_key(path: str) -> bool:
    return path.startswith("global options") or path.startswith("jobs[].job options")


#: the group id fio prints for a report entry it allocated but never filled (-1 as an unsigned int)
FIO_NO_GROUP = 2**32 - 1


def drop_fio_phantoms(fj: dict[str, Any], res: Result) -> dict[str, Any]:
    """fio's document without its empty job entries (no jobname, groupid 4294967295).

    fio 3.33 sizes its list of report entries with a count that disagrees with how it fills it (a
    stats=0 job without group_reporting is counted; a group_reporting job that joins the entry of the
    job before it is counted too) and prints the unfilled entries as nameless jobs of no group.  iolab
    leaves them out on purpose (docs/fio-differences.md, "fio bugs iolab does not copy").
    """
    jobs = fj.get("jobs", [])
    kept = [j for j in jobs if j.get("jobname") is not None or j.get("groupid") != FIO_NO_GROUP]
    if len(kept) == len(jobs):
        return fj
    res.skipped_compares.append(
        f"fio's {len(jobs) - len(kept)} empty job entr{'y' if len(jobs) - len(kept) == 1 else 'ies'}"
        " (no jobname, groupid 4294967295): a fio bug iolab does not copy"
    )
    return dict(fj, jobs=kept)


def classify(case: Case, fio: Observation | None, lab: Observation) -> Result:
    res = Result(case, AGREE, iolab_rc=lab.rc, fio_rc=fio.rc if fio else None)
    res.seconds = lab.seconds + (fio.seconds if fio else 0.0)
    problem = internal_error(lab)
    if problem:
        res.verdict = INTERNAL
        res.message = problem
        res.findings.append(Finding("internal", fio.rc if fio else None, lab.rc, problem))
        return res
    if fio is None:
        # fio not run (device or engine we don't have): iolab must refuse cleanly.
        if lab.rc == 1:
            res.verdict = REFUSED
            res.message = error_line(lab.stderr)
            res.refused_by = refused_feature(res.message) or case.skip_fio
        else:
            res.verdict = DISAGREE
            res.findings.append(
                Finding(
                    "exit_code",
                    f"not run: {case.skip_fio}",
                    0,
                    "iolab ran a job that needs what the harness does not have",
                )
            )
        return res
    if fio.rc != 0 and lab.rc != 0:
        res.message = error_line(lab.stderr)
        return res  # both refuse the job
    if fio.rc == 0 and lab.rc != 0:
        res.message = error_line(lab.stderr)
        res.refused_by = refused_feature(res.message)
        if res.refused_by:
            res.verdict = REFUSED
        else:
            res.verdict = DISAGREE
            res.findings.append(Finding("exit_code", 0, lab.rc, res.message))
        return res
    if fio.rc != 0:
        res.verdict = DISAGREE
        why = (
            f"fio hung: killed after {fio.seconds:.0f}s"
            if fio.timed_out
            else "fio: " + error_line(fio.stderr, fio.stdout)
        )
        res.findings.append(Finding("exit_code", fio.rc, 0, why))
        return res
    assert lab.json is not None
    if fio.json is None:
        res.verdict = DISAGREE
        res.findings.append(Finding("fio_output", "no JSON", "JSON", "fio printed no JSON document"))
        return res
    fj = drop_fio_phantoms(fio.json, res)
    compare_jobs(case, fj, lab.json, res)
    compare_files(case, fio, lab, res)
    compare_keys(case, fj, lab.json, res)
    if res.findings:
        res.verdict = DISAGREE
    return res
