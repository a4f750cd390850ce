"""Pure parts of the stacking resolution (the device parts are in test_safety_corpus.py)."""

from __future__ import annotations

import os

from iolab.doctor.stacking import huge_decode_dev, overlay_layer_dirs


def test_overlay_layer_dirs_from_mountinfo_super_options() -> None:
    # as the kernel shows them: octal escapes for space, comma and backslash; "\:" (a colon in a lowerdir
    # name) arrives as \134: ; "::" separates data-only layers
    opts = r"rw,lowerdir=/l\0401:/l\134:2::/data,upperdir=/up\054per,workdir=/w,uuid=on"
    assert overlay_layer_dirs(opts) == ["/up,per", "/l 1", "/l:2", "/data"]
    assert overlay_layer_dirs("rw,lowerdir+=/a,lowerdir+=/b,datadir+=/d,upperdir=/u") == [
        "/u",
        "/a",
        "/b",
        "/d",
    ]
    assert overlay_layer_dirs("rw,lowerdir=relative,upperdir=/u") == ["/u"]  # only absolute paths resolve


def test_huge_decode_dev_matches_the_kernel_encoding() -> None:
    for major, minor in ((7, 0), (253, 1), (259, 65536), (8, 300)):
        encoded = (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)  # the kernel's new_encode_dev
        assert huge_decode_dev(encoded) == (major, minor)
        assert (os.major(os.makedev(major, minor)), os.minor(os.makedev(major, minor))) == (major, minor)
