"""`iolab serve`: an NBD server with QEMU-compatible blkdebug fault injection, breakpoints and filters.

    from iolab.nbd import serve
    with serve("disk.img") as srv:
        srv.break_("write_aio", "A")
        ...                       # a client writes; the write is held
        srv.wait_break("A")
        srv.resume("A")

See docs/nbd.md.
"""

from iolab.nbd.api import NBDServer, NBDServerError, serve
from iolab.nbd.service import ExportConfig

__all__ = ["ExportConfig", "NBDServer", "NBDServerError", "serve"]
