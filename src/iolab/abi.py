"""Values the plan and the C core agree on: engine numbers, engine flag bits, poll modes, table sizes.

The plan (iolab.plan) fills the job config with them and the engine (iolab.engine.config) packs it and
generates csrc/config_gen.h from them, so they sit below both. The engine numbers and flag bits come from
the engines' specs (iolab.ioengines); the generated header carries them to C.
"""

from __future__ import annotations

from iolab.ioengines import ENGINE_SPECS, engine_flag_bit

BSSPLIT_MAX = 64
"""bssplit entries per direction (``bssplit_bs``/``bssplit_perc`` index ``d * BSSPLIT_MAX + i``)."""

IGNORE_ERROR_MAX = 16
"""errnos per direction in ``ignore_error`` (``ignore_error`` indexes ``d * IGNORE_ERROR_MAX + i``)."""
ZONE_TABLE = 100
"""zoned random_distribution: one (start, end) pair per draw 1..100, per direction."""

#: the config's ``engine`` values (C: ``enum iol_engine_id``), from the engines' specs
ENGINE_IDS: dict[str, int] = {spec.name: spec.engine_id for spec in ENGINE_SPECS}
ENGINE_PSYNC = ENGINE_IDS["psync"]
ENGINE_LIBAIO = ENGINE_IDS["libaio"]
ENGINE_IO_URING = ENGINE_IDS["io_uring"]

#: ``engine_flags`` bits (C: ``IOL_EF_*``), from :data:`iolab.ioengines.ENGINE_FLAGS`
EF_USERSPACE_REAP = engine_flag_bit("USERSPACE_REAP")
EF_FIXEDBUFS = engine_flag_bit("FIXEDBUFS")
EF_REGISTERFILES = engine_flag_bit("REGISTERFILES")
EF_SQTHREAD_POLL = engine_flag_bit("SQTHREAD_POLL")
EF_SQTHREAD_CPU = engine_flag_bit("SQTHREAD_CPU")
EF_HIPRI = engine_flag_bit("HIPRI")
EF_NONVECTORED = engine_flag_bit("NONVECTORED")
EF_VECTORED = engine_flag_bit("VECTORED")

#: ``poll_mode`` values
POLL_MODES = {"off": 0, "on": 1, "adaptive": 2}
