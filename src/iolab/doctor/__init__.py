"""iolab doctor: find what makes a storage benchmark lie, before and after it runs.

API for `iolab run` (see CODES.md for the finding codes):

- `inspect_target(path) -> TargetInfo`: what a filename is and every block device under it
- `pre_run(plan_or_jobdefs, jobdefs=None, expect_raw=False) -> list[Finding]`: the pre-run checks
- `SafetyGate.open(plan, allow_destroy) -> RunGate`: open once. Every file of the run opened by name once
  (anchors, iolab/plan/anchor.py), written devices held with O_EXCL, and the checks run on those fds
  (`RunGate.findings`: errors block the run). The run uses `RunGate.anchors` only (layout, the workers'
  opens, unlink), never the names again. What jobs write, lay out or unlink is gated.
- `check_fd(fd, path, users=..., allow_destroy=...)`: the gate's checks on one open fd (fstat)
- `SafetyGate.check(plan, allow_destroy) -> list[Finding]`: the same checks by path, for `iolab doctor`;
  `SafetyGate.exclusive(plan, allow_destroy) -> ExclusiveHold` (O_EXCL fds by path; raises SafetyError)
- `devices_for(plan)`, `DeviceCounters.snapshot(devices)` / `.diff(before, after)`,
  `Issued.from_raw(raw_results)`, `lie_report(issued, observed) -> LieReport` / `lie_detector(...)`;
  `DeviceCheck([PhaseCheck(...)])`: one report per phase of a run
- `explain(command) -> str`, `translate(command) -> Explanation`
- `main(argv) -> int` for `iolab doctor ...` and `iolab explain ...`
- `render_findings`, `findings_json`, `strict`, `has_errors` for the run's output
"""

from iolab.doctor.checks import Context, pre_run
from iolab.doctor.cli import doctor_main, explain_main, main
from iolab.doctor.counters import (
    DeviceCheck,
    DeviceCounters,
    DeviceStat,
    Issued,
    LieReport,
    PhaseCheck,
    Snapshot,
    devices_for,
    devices_under,
    lie_detector,
    lie_report,
)
from iolab.doctor.explain import ExplainError, Explanation, explain, translate
from iolab.doctor.extents import NeverWritten, never_written
from iolab.doctor.findings import (
    CODES,
    Finding,
    findings_json,
    has_errors,
    render_findings,
    sort_findings,
    strict,
)
from iolab.doctor.safety import (
    ExclusiveHold,
    RunGate,
    SafetyError,
    SafetyGate,
    check_fd,
    read_signatures,
)
from iolab.doctor.signatures import Signature
from iolab.doctor.target import BlockDevice, Mount, TargetInfo, inspect_target

__all__ = [
    "CODES",
    "BlockDevice",
    "Context",
    "DeviceCheck",
    "DeviceCounters",
    "DeviceStat",
    "ExclusiveHold",
    "ExplainError",
    "Explanation",
    "Finding",
    "Issued",
    "LieReport",
    "Mount",
    "NeverWritten",
    "PhaseCheck",
    "RunGate",
    "SafetyError",
    "SafetyGate",
    "Signature",
    "Snapshot",
    "TargetInfo",
    "check_fd",
    "devices_for",
    "devices_under",
    "doctor_main",
    "explain",
    "explain_main",
    "findings_json",
    "has_errors",
    "inspect_target",
    "lie_detector",
    "lie_report",
    "main",
    "never_written",
    "pre_run",
    "read_signatures",
    "render_findings",
    "sort_findings",
    "strict",
    "translate",
]
