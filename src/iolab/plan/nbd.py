"""ioengine=nbd at plan time: the export each job runs on, asked of the server as fio's nbd engine does.

fio's nbd engine connects once while it sets the job up, takes the export's size as the size of the job's
one file, and disconnects; the job's own connection is made when it starts. iolab does the same here
(iolab/nbdwire/client.py) and refuses, before anything runs, what the export cannot do: writes to a read-only
export, fsync/fdatasync (NBD_CMD_FLUSH) to one without flush, several connections to one without
multi-conn. The export is sized and cut like a block device (the region must lie inside it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from iolab.jobfile import JobDef
from iolab.plan.files import FilePlan, PlanError
from iolab.plan.files import where as _where

if TYPE_CHECKING:
    from iolab.nbdwire.client import ExportInfo

#: the largest request every NBD server must accept (the protocol's 32 MiB)
NBD_MAX_REQUEST = 32 << 20
#: options that name local files, which an nbd job has none of (the export is uri=)
_LOCAL_FILE_OPTIONS = ("filename", "directory", "filename_format", "nrfiles", "opendir")


@dataclass(frozen=True)
class NbdTarget:
    uri: str
    info: ExportInfo
    #: connections per job (nbd_conns)
    conns: int = 1
    #: the export as the job's one file: its region (filled in by build_plan)
    file: FilePlan | None = None


def nbd_targets(
    jobdefs: Sequence[JobDef], mode_flags: Callable[[str], tuple[bool, bool, bool] | None]
) -> dict[int, NbdTarget]:
    """The export of every ioengine=nbd job (by position in jobdefs). Raises PlanError."""
    from iolab.nbdwire.client import NbdError, probe

    seen: dict[str, ExportInfo] = {}
    out: dict[int, NbdTarget] = {}
    for pos, jd in enumerate(jobdefs):
        v = jd.values
        if str(v.get("ioengine") or "psync") != "nbd":
            continue
        uri = v.get("uri")
        if not uri:
            raise PlanError(
                f"{_where(jd, 'ioengine')}: ioengine=nbd needs uri= (nbd://HOST[:PORT]/EXPORT or "
                "nbd+unix:///EXPORT?socket=PATH)"
            )
        uri = str(uri)
        for name in _LOCAL_FILE_OPTIONS:
            if name in jd.set_at and not (name == "nrfiles" and int(v.get("nrfiles") or 1) == 1):
                raise PlanError(
                    f"{_where(jd, name)}: {name}= names local files, but an ioengine=nbd job runs on the "
                    f"export uri={uri} alone; remove {name}="
                )
        if uri not in seen:
            try:
                seen[uri] = probe(uri)[1]
            except NbdError as exc:
                raise PlanError(f"{_where(jd, 'uri')}: {exc}") from None
        info = seen[uri]
        mode = str(v.get("rw"))
        # a trim destroys data as a write does: mode_flags counts trim modes as writing
        _, writes, _ = mode_flags(mode) or (True, True, False)
        if writes and info.read_only:
            raise PlanError(
                f"{_where(jd, 'rw')}: uri={uri}: the export is read-only, and rw={mode} writes; use a "
                "reading rw= or export it writable"
            )
        if "trim" in mode and not info.can_trim:
            raise PlanError(
                f"{_where(jd, 'rw')}: uri={uri}: the server does not support trim (NBD_CMD_TRIM), which "
                f"rw={mode} needs; use a read or write mode"
            )
        syncs = [n for n in ("fsync", "fdatasync", "end_fsync") if v.get(n)]
        if syncs and writes and not info.can_flush:
            raise PlanError(
                f"{_where(jd, syncs[0])}: uri={uri}: the server does not support flush (NBD_CMD_FLUSH), "
                f"which {syncs[0]}= needs; remove {syncs[0]}="
            )
        if info.size == 0:
            raise PlanError(f"{_where(jd, 'uri')}: uri={uri}: the export is empty (0 bytes)")
        conns = int(v.get("nbd_conns") or 1)
        if conns > 1 and not info.multi_conn and not v.get("nbd_conns_force"):
            raise PlanError(
                f"{_where(jd, 'nbd_conns')}: uri={uri}: nbd_conns={conns}, but the server does not advertise "
                "multi-conn (NBD_FLAG_CAN_MULTI_CONN): a flush on one connection may not cover writes on the "
                "others; use nbd_conns=1, or nbd_conns_force=1 if that does not matter"
            )
        out[pos] = NbdTarget(uri, info, conns)
    return out
