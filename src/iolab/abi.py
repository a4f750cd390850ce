"""Values the plan and the C core agree on: engine numbers, engine flag bits, poll modes, table sizes.

The plan (iolab.plan) fills the job config with them and the engine (iolab.engine.config) packs it and
generates csrc/config_gen.h from them, so they sit below both. csrc/engine.h mirrors the engine numbers
and flag bits.
"""

from __future__ import annotations

BSSPLIT_MAX = 64
"""bssplit entries per direction (``bssplit_bs``/``bssplit_perc`` index ``d * BSSPLIT_MAX + i``)."""

IGNORE_ERROR_MAX = 16
"""errnos per direction in ``ignore_error`` (``ignore_error`` indexes ``d * IGNORE_ERROR_MAX + i``)."""
ZONE_TABLE = 100
"""zoned random_distribution: one (start, end) pair per draw 1..100, per direction."""

ENGINE_PSYNC = 0
ENGINE_LIBAIO = 1
ENGINE_IO_URING = 2

#: ``engine_flags`` bits (csrc/engine.h IOL_EF_*)
EF_USERSPACE_REAP = 0x01
EF_FIXEDBUFS = 0x02
EF_REGISTERFILES = 0x04
EF_SQTHREAD_POLL = 0x08
EF_SQTHREAD_CPU = 0x10
EF_HIPRI = 0x20
EF_NONVECTORED = 0x40
EF_VECTORED = 0x80

#: ``poll_mode`` values
POLL_MODES = {"off": 0, "on": 1, "adaptive": 2}
