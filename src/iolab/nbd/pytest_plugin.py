"""pytest fixtures for testing storage code against an NBD export with fault injection.

Registered as the `iolab_nbd` pytest plugin (entry point), so any project with iolab installed gets:

- `nbd_serve(image, **kwargs)`: start `iolab.nbd.serve(image, **kwargs)`; stopped after the test.
- `nbd_image`: a 64 MiB sparse image file in the test's temporary directory.
- `nbd_export`: `nbd_image` served on a private unix socket (`.uri`, `.break_()`, `.resume()`, ...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def nbd_serve() -> Iterator[Callable[..., Any]]:
    from iolab.nbd.api import serve

    with contextlib.ExitStack() as stack:

        def start(image: str | Path, **kwargs: Any) -> Any:
            return stack.enter_context(serve(image, **kwargs))

        yield start


@pytest.fixture
def nbd_image(tmp_path: Path) -> Path:
    path = tmp_path / "nbd-export.img"
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    return path


@pytest.fixture
def nbd_export(nbd_serve: Callable[..., Any], nbd_image: Path) -> Any:
    return nbd_serve(nbd_image)
