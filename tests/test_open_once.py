"""Open once: attacks on the time between the safety gate's check and the engine's use of a file.

Every case runs `iolab run` (or `iolab quick`) as a user does, in a subprocess, against loop devices, mounts
and files made here, and compares sha256 sums of what must not be touched before and after. Root is
needed for the loop devices and mounts (skipped with the reason elsewhere, required in CI).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from test_doctor_safety import swap_file
from test_doctor_support import MiB, attached, mkfs_ext4, mounted, need_root, sparse, write_random

IOLAB = [sys.executable, "-m", "iolab"]


def sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def iolab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IOLAB, *args], capture_output=True, text=True, timeout=120)


@contextmanager
def started(*args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`iolab run ARGS` in the background, yielded once it printed its preamble ("Starting N thread"): the
    gate has passed and the workers wait out their startdelay. Yields the process and the stdout so far."""
    proc = subprocess.Popen([*IOLAB, "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            if not line:
                _, err = proc.communicate(timeout=60)
                raise AssertionError(f"iolab ended before starting its jobs:\n{''.join(seen)}\n{err}")
            seen.append(line)
            if line.startswith("Starting "):
                break
        yield proc, seen
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)


def finish(proc: subprocess.Popen[str], seen: list[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, "".join(seen) + out, err


def swap_symlink(link: Path, target: str | Path) -> None:
    """Point `link` at `target` atomically (rename over it), as an attacker would."""
    tmp = link.with_name(link.name + ".new")
    tmp.symlink_to(target)
    os.replace(tmp, link)


@contextmanager
def mounted_ext4(where: Path) -> Iterator[str]:
    """A loop device with a mounted ext4 (noinit_itable: the idle mount writes nothing in the background)."""
    image = sparse(where / "ext4.img", 64 * MiB)
    mkfs_ext4(image)
    with attached(image) as dev, mounted(dev, where / "mnt", "noinit_itable"):
        (where / "mnt" / "precious.txt").write_text("someone's data\n")
        subprocess.run(["sync"], check=True)
        yield dev


def zeros(path: Path, size: int) -> Path:
    path.write_bytes(bytes(size))
    return path


# ------------------------------------------------------------------------------------------ symlink races


def test_symlink_swapped_to_a_mounted_device_during_startdelay(direct_dir: Path) -> None:
    """(a) The job's filename is a symlink to a plain file when the gate checks it; while the job waits out
    startdelay=2, the symlink is swapped to a loop device holding a mounted ext4. The writes must still go
    to the file the gate checked."""
    need_root("create loop devices and mount")
    target = zeros(direct_dir / "target.dat", 4 * MiB)
    link = direct_dir / "data"
    link.symlink_to(target)
    with mounted_ext4(direct_dir) as dev:
        before = sha256(dev)
        with started(
            "--name=w", f"--filename={link}", "--size=4m", "--rw=write", "--bs=64k", "--startdelay=2"
        ) as (proc, seen):
            t0 = time.monotonic()
            swap_symlink(link, dev)
            assert time.monotonic() - t0 < 1.5  # well inside the startdelay: the worker has not opened yet
            status, out, err = finish(proc, seen)
        assert status == 0, err
        assert os.readlink(link) == dev  # the name led to the device when the worker opened its file
        assert sha256(dev) == before, "the mounted device was written"
        assert target.read_bytes() != bytes(4 * MiB), "the checked file did not get the writes"
        assert "write: IOPS=" in out


def test_symlink_swapped_to_a_loop_backing_file_during_startdelay(direct_dir: Path) -> None:
    need_root("create loop devices")
    target = zeros(direct_dir / "target.dat", 4 * MiB)
    backing = write_random(direct_dir / "backing.img", 4 * MiB)
    link = direct_dir / "data"
    link.symlink_to(target)
    with attached(backing):
        before = sha256(backing)
        with started(
            "--name=w", f"--filename={link}", "--size=4m", "--rw=write", "--bs=64k", "--startdelay=2"
        ) as (proc, seen):
            swap_symlink(link, backing)
            status, _, err = finish(proc, seen)
        assert status == 0, err
        assert sha256(backing) == before, "the loop device's backing file was written"
        assert target.read_bytes() != bytes(4 * MiB)


def test_backing_file_renamed_over_the_name_during_startdelay(direct_dir: Path) -> None:
    """Not a symlink: the checked file's name is replaced by a hard link to a loop backing file (rename)."""
    need_root("create loop devices")
    target = zeros(direct_dir / "target.dat", 4 * MiB)
    backing = write_random(direct_dir / "backing.img", 4 * MiB)
    with attached(backing):
        before = sha256(backing)
        with started(
            "--name=w", f"--filename={target}", "--size=4m", "--rw=write", "--bs=64k", "--startdelay=2"
        ) as (proc, seen):
            alias = direct_dir / "alias.img"
            os.link(backing, alias)
            os.replace(alias, target)  # the name now is the backing file
            status, _, err = finish(proc, seen)
        assert status == 0, err
        assert sha256(backing) == before and sha256(target) == before


def test_dangling_symlink_that_comes_to_lead_to_a_device(direct_dir: Path) -> None:
    """(f) The filename is a symlink to a name that does not exist at the check (create_on_open=1: the job's
    open creates the file). During startdelay that name becomes a symlink to a mounted device. The job must
    not follow it: it creates only a new file, and refuses what is there."""
    need_root("create loop devices and mount")
    later = direct_dir / "later"
    link = direct_dir / "data"
    link.symlink_to(later)
    with mounted_ext4(direct_dir) as dev:
        before = sha256(dev)
        with started(
            "--name=w",
            f"--filename={link}",
            "--size=1m",
            "--rw=write",
            "--create_on_open=1",
            "--startdelay=2",
        ) as (proc, seen):
            later.symlink_to(dev)
            status, _, err = finish(proc, seen)
        assert status == 1
        assert f"{link}: a symlink to {later}" in err and "not used" in err
        assert sha256(dev) == before, "the mounted device was written"


def test_missing_file_created_by_the_job_itself(direct_dir: Path) -> None:
    """The ordinary case next to the attack above: create_on_open makes the file, and it is the one used."""
    target = direct_dir / "sub" / "new.dat"
    r = iolab("run", "--name=w", f"--filename={target}", "--size=1m", "--rw=write", "--create_on_open=1")
    assert r.returncode == 0, r.stderr
    assert target.stat().st_size == MiB


# ---------------------------------------------------------------------------------- layout and unlink


def test_unlink_on_a_read_job_of_a_loop_backing_file_is_refused(direct_dir: Path) -> None:
    """(b) unlink=1 removes the file: a write for the gate, even in a read job."""
    need_root("create loop devices")
    backing = write_random(direct_dir / "backing.img", 4 * MiB)
    hard = direct_dir / "hardlink.img"
    os.link(backing, hard)
    with attached(backing) as dev:
        before = sha256(backing)
        for name in (backing, hard):
            r = iolab("run", "--name=r", f"--filename={name}", "--size=4m", "--rw=read", "--unlink=1")
            assert r.returncode == 1 and "refusing to run" in r.stderr and "IOL-SAFE-006" in r.stderr, (
                r.stderr
            )
            assert dev in r.stderr
            assert name.exists() and sha256(name) == before
        # naming the file with --allow-destroy overrides (for a loop backing file; never for swap)
        r = iolab(
            "run", "--name=r", f"--filename={hard}", "--size=4m", "--rw=read", "--unlink=1",
            f"--allow-destroy={hard}",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert not hard.exists() and sha256(backing) == before


def test_unlink_on_a_read_job_of_an_active_swap_file_is_refused_always(direct_dir: Path) -> None:
    path = direct_dir / "swapfile"
    with swap_file(path):
        before = sha256(path)
        r = iolab(
            "run", "--name=r", f"--filename={path}", "--size=4m", "--rw=read", "--unlink=1",
            f"--allow-destroy={path}",
        )  # fmt: skip
        assert r.returncode == 1 and "IOL-SAFE-007" in r.stderr, r.stderr
        assert path.exists() and sha256(path) == before


def test_unlink_leaves_a_file_that_replaced_the_name(direct_dir: Path) -> None:
    """(b) The job's file is renamed away during the run and another file put at its name: unlink=1 removes
    only the file the job used, so the other one survives (and the job says so)."""
    target = zeros(direct_dir / "target.dat", 4 * MiB)
    with started(
        "--name=w", f"--filename={target}", "--size=4m", "--rw=write", "--bs=64k", "--unlink=1",
        "--startdelay=1",
    ) as (proc, seen):  # fmt: skip
        os.rename(target, direct_dir / "moved.dat")
        other = write_random(target, MiB)
        other_sum = sha256(other)
        status, out, err = finish(proc, seen)
    assert status == 0, err
    assert target.exists() and sha256(target) == other_sum
    assert f"{target} was not removed" in out + err
    moved = (direct_dir / "moved.dat").read_bytes()
    assert moved != bytes(4 * MiB)  # the job wrote the file it opened (now under the other name)


def test_unlink_removes_the_job_file(direct_dir: Path) -> None:
    target = zeros(direct_dir / "target.dat", MiB)
    r = iolab("run", "--name=w", f"--filename={target}", "--size=1m", "--rw=write", "--unlink=1")
    assert r.returncode == 0, r.stderr
    assert not target.exists()


def test_read_job_that_must_extend_a_loop_backing_file_is_refused(direct_dir: Path) -> None:
    """(c) The file is smaller than size=: the job's setup would remove and re-create it (a layout)."""
    need_root("create loop devices")
    backing = write_random(direct_dir / "backing.img", 4 * MiB)
    with attached(backing):
        before = sha256(backing)
        r = iolab("run", "--name=r", f"--filename={backing}", "--size=8m", "--rw=read")
        assert r.returncode == 1 and "IOL-SAFE-006" in r.stderr, r.stderr
        assert sha256(backing) == before and backing.stat().st_size == 4 * MiB


def test_quick_on_a_loop_backing_file_is_refused_before_writing(direct_dir: Path) -> None:
    """(d) `iolab quick --target FILE` lays FILE out through the same gate as `iolab run`."""
    need_root("create loop devices")
    backing = write_random(direct_dir / "backing.img", 4 * MiB)
    with attached(backing):
        before = sha256(backing)
        r = iolab("quick", "--target", str(backing), "--size", "8m", "--runtime", "1", "--ramp-time", "0")
        assert r.returncode == 1 and "refusing to run" in r.stderr and "IOL-SAFE-006" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and "quick: writing" not in r.stderr
        assert sha256(backing) == before and backing.stat().st_size == 4 * MiB


def test_quick_lays_a_new_target_out(direct_dir: Path) -> None:
    target = direct_dir / "quick.dat"
    r = iolab(
        "quick", "--target", str(target), "--size", "4m", "--runtime", "1", "--ramp-time", "0",
        "--only", "latency-reads",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert target.stat().st_size == 4 * MiB and target.read_bytes()[:4096] != bytes(4096)


# ------------------------------------------------------------------------------------ O_EXCL and aliases


def test_device_held_exclusively_for_the_run(direct_dir: Path) -> None:
    """(e) While a run writes a device (allowed), nothing can mount it: the gate's O_EXCL hold."""
    need_root("create loop devices and mount")
    image = sparse(direct_dir / "ext4.img", 64 * MiB)
    mkfs_ext4(image)
    (direct_dir / "mnt").mkdir()
    with attached(image) as dev:
        with started(
            "--name=w", f"--filename={dev}", "--size=4m", "--rw=write", "--startdelay=2",
            f"--allow-destroy={dev}",
        ) as (proc, seen):  # fmt: skip
            m = subprocess.run(["mount", dev, str(direct_dir / "mnt")], capture_output=True, text=True)
            if m.returncode == 0:
                subprocess.run(["umount", str(direct_dir / "mnt")], check=False)
            status, _, err = finish(proc, seen)
        assert m.returncode != 0, "mount succeeded while the run held the device"
        assert "busy" in m.stderr or "in use" in m.stderr, m.stderr
        assert status == 0, err


def test_proc_fd_path_as_filename(direct_dir: Path) -> None:
    """/proc/self/fd/N (an fd iolab inherited) as the filename: resolved once, to the loop backing file."""
    need_root("create loop devices")
    backing = write_random(direct_dir / "backing.img", 4 * MiB)
    with attached(backing):
        before = sha256(backing)
        fd = os.open(backing, os.O_RDONLY)
        try:
            proc = subprocess.run(
                [*IOLAB, "run", "--name=w", f"--filename=/proc/self/fd/{fd}", "--size=4m", "--rw=write"],
                capture_output=True,
                text=True,
                pass_fds=(fd,),
                timeout=120,
            )
        finally:
            os.close(fd)
        assert proc.returncode == 1 and "IOL-SAFE-006" in proc.stderr, proc.stderr
        assert sha256(backing) == before


def test_bind_mounted_backing_file(direct_dir: Path) -> None:
    """The backing file's directory bind-mounted elsewhere: the same file by device and inode."""
    need_root("create loop devices and mount")
    real = direct_dir / "real"
    real.mkdir()
    backing = write_random(real / "backing.img", 4 * MiB)
    view = direct_dir / "view"
    view.mkdir()
    with attached(backing):
        before = sha256(backing)
        with mounted(str(real), view, "bind"):
            r = iolab("run", "--name=w", f"--filename={view / 'backing.img'}", "--size=4m", "--rw=write")
            assert r.returncode == 1 and "IOL-SAFE-006" in r.stderr, r.stderr
        assert sha256(backing) == before


def test_layout_refuses_a_name_that_became_a_device(direct_dir: Path, loop_device: str) -> None:
    """Planned as a missing file to lay out; by the time the run opens it the name is a symlink to a (blank)
    block device: the gate checks the device it opened, and the layout refuses to unlink or write it."""
    from iolab.doctor import SafetyGate
    from iolab.engine.runner import prepare_files
    from iolab.jobfile import parse_cli
    from iolab.plan import build_plan

    name = direct_dir / "data"
    plan = build_plan(parse_cli(["--name=r", f"--filename={name}", "--size=1m", "--rw=read"]).jobs)
    assert plan.jobs[0].files[0].extend and not plan.jobs[0].files[0].is_block
    name.symlink_to(loop_device)
    before = sha256(loop_device)
    with SafetyGate.open(plan) as gate:
        assert gate.findings == [] and gate.held == [str(name)]  # checked as the device it is, and held
        failed: dict[int, tuple[str, int]] = {}
        prepare_files(plan, failed, gate.anchors)
    assert "not a regular file when the run opened it" in failed[0][0]
    assert name.is_symlink() and sha256(loop_device) == before


def test_doctor_gates_layout_and_unlink_of_read_jobs(direct_dir: Path) -> None:
    """`iolab doctor JOBFILE` (path-based, writes nothing) counts layout and unlink=1 as writes too."""
    need_root("create loop devices")
    backing = write_random(direct_dir / "backing.img", 4 * MiB)
    with attached(backing):
        for extra in ("unlink=1\n", "size=8m\n"):
            jobfile = direct_dir / "r.fio"
            jobfile.write_text(f"[r]\nfilename={backing}\nrw=read\nsize=4m\n{extra}")
            r = iolab("doctor", str(jobfile))
            assert r.returncode == 1 and "IOL-SAFE-006" in r.stdout, (extra, r.stdout, r.stderr)
        jobfile.write_text(f"[r]\nfilename={backing}\nrw=read\nsize=4m\n")
        assert "IOL-SAFE-006" not in iolab("doctor", str(jobfile)).stdout  # reading it is fine


def test_directory_symlink_swapped_before_a_later_jobs_layout(direct_dir: Path) -> None:
    """A later job (stonewall, create_serialize=0) lays its file out when it starts, seconds after the check.
    Meanwhile the directory in its filename is swapped to one where that name is a loop backing file: the
    layout must happen in the directory the gate opened, and leave the backing file alone."""
    need_root("create loop devices")
    first = zeros(direct_dir / "first.dat", MiB)
    checked = direct_dir / "checked"
    checked.mkdir()
    elsewhere = direct_dir / "elsewhere"
    elsewhere.mkdir()
    backing = write_random(elsewhere / "data", 2 * MiB)
    link = direct_dir / "d"
    link.symlink_to(checked)
    with attached(backing):
        before = sha256(backing)
        with started(
            "--name=first", f"--filename={first}", "--size=1m", "--rw=read", "--startdelay=2",
            "--name=second", "--stonewall", "--create_serialize=0", f"--filename={link / 'data'}",
            "--size=4m", "--rw=read",
        ) as (proc, seen):  # fmt: skip
            swap_symlink(link, elsewhere)
            status, _, err = finish(proc, seen)
        assert status == 0, err
        assert backing.exists() and sha256(backing) == before and backing.stat().st_size == 2 * MiB
        assert (checked / "data").stat().st_size == 4 * MiB  # laid out where the gate looked


def test_check_fd_reads_the_device_it_was_given_not_the_name(direct_dir: Path, loop_device: str) -> None:
    """check_fd's signature read goes through the fd: a name that leads to a blank device by now does not
    hide the file system on the device the fd holds; the findings name the caller's path."""
    from iolab.doctor import check_fd

    image = sparse(direct_dir / "ext4.img", 64 * MiB)
    mkfs_ext4(image)
    name = direct_dir / "name"
    name.symlink_to(loop_device)  # blank
    with attached(image) as dev:
        fd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
        try:
            found = check_fd(fd, str(name), users=["w"])
        finally:
            os.close(fd)
    assert [f.code for f in found] == ["IOL-SAFE-004"], found
    assert str(name) in found[0].message and "/proc/self/fd" not in repr(found[0])


def test_device_held_by_someone_else_is_refused_even_when_allowed(loop_device: str) -> None:
    """An exclusive holder the gate cannot name (here: this test's O_EXCL open) keeps the run out, also
    with --allow-destroy: only a file system mounted from the device and allowed may hold it."""
    holder = os.open(loop_device, os.O_RDONLY | os.O_EXCL)
    try:
        before = sha256(loop_device)
        r = iolab(
            "run", "--name=w", f"--filename={loop_device}", "--size=1m", "--rw=write",
            f"--allow-destroy={loop_device}",
        )  # fmt: skip
        assert r.returncode == 1 and "IOL-SAFE-005" in r.stderr and "EBUSY" in r.stderr, r.stderr
        assert sha256(loop_device) == before
    finally:
        os.close(holder)
