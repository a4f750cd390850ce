"""Build the private C core, iolab._core.

setuptools is used (not scikit-build-core) because the core is a handful of C files with no
dependencies: a plain Extension needs no CMake and builds with what `pip install .` already has.
"""

import os
from glob import glob

from setuptools import Extension, setup

extra = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers"]
if os.environ.get("IOLAB_SANITIZE"):
    extra += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]

setup(
    ext_modules=[
        Extension(
            "iolab._core",
            sources=sorted(glob("csrc/*.c")),
            depends=sorted(glob("csrc/*.h")),
            include_dirs=["csrc"],
            libraries=["m"],
            extra_compile_args=extra,
            extra_link_args=["-fsanitize=address,undefined"] if os.environ.get("IOLAB_SANITIZE") else [],
        )
    ]
)
