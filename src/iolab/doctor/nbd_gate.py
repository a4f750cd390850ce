"""The safety gate for ioengine=nbd: an NBD export is a remote block device.

Nothing local is opened, so the local checks (mounts, holders, swap, loop backing files) cannot see what
the server exports. What the gate can see is the export's content: before a job writes to a writable
export, its first 68 KiB and last 128 KiB are read over NBD and probed with the gate's signature table
(signatures.signatures_in, the same table as the block-device fallback prober). A partition table or a
file-system signature refuses the run (IOL-SAFE-008) unless `--allow-destroy=URI` names exactly that
URI; an export that carries none is written like a block device without signatures. A read-only export
never gets here: the plan refuses writes to it (iolab/plan/nbd.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from iolab.doctor.findings import Finding, finding
from iolab.doctor.signatures import HEAD_BYTES, Signature, signatures_in
from iolab.plan import NbdTarget

#: the tail the signature table looks at
_TAIL_BYTES = 128 * 1024


def _probe(target: NbdTarget) -> list[Signature]:
    from iolab.nbdwire import client

    size = target.info.size
    sock, _ = client.connect(client.parse_uri(target.uri))
    try:
        head = client.read_range(sock, 0, min(HEAD_BYTES, size))
        head += bytes(HEAD_BYTES - len(head))
        tail_len = min(_TAIL_BYTES, size)
        tail = client.read_range(sock, size - tail_len, tail_len)
    finally:
        client.disconnect(sock)
    return signatures_in(head, tail, size)


def nbd_write_findings(
    written: Iterable[tuple[str, NbdTarget]], allow_destroy: Sequence[str]
) -> list[Finding]:
    """IOL-SAFE-008 for every written export (job name, target) that carries a signature."""
    from iolab.nbdwire.client import NbdError

    by_uri: dict[str, tuple[NbdTarget, list[str]]] = {}
    for job, target in written:
        by_uri.setdefault(target.uri, (target, []))[1].append(job)
    out: list[Finding] = []
    for uri, (target, jobs) in by_uri.items():
        users = ", ".join(dict.fromkeys(jobs))
        try:
            found = _probe(target)
        except (NbdError, OSError, ConnectionError) as exc:
            out.append(
                finding(
                    "IOL-SAFE-008",
                    f"uri={uri}: cannot read the export to check it before writing: {exc}",
                    {"uri": uri, "jobs": users},
                    "make the export readable, or check the server",
                )
            )
            continue
        if not found:
            continue
        names = ", ".join(str(s) for s in found)
        message = f"uri={uri} (written by {users}) carries {names}: writing destroys it"
        evidence = {"uri": uri, "signatures": [s.to_json() for s in found], "jobs": users}
        fix = f"export a scratch image instead, or pass --allow-destroy={uri} if its data may be destroyed"
        if uri in allow_destroy:
            out.append(
                finding(
                    "IOL-SAFE-008",
                    f"{message} (allowed by --allow-destroy={uri})",
                    evidence,
                    fix,
                    severity="info",
                )
            )
        else:
            out.append(finding("IOL-SAFE-008", message, evidence, fix))
    return out
