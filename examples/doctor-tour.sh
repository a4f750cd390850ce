#!/bin/bash
# Every finding code of `iolab doctor`, triggered on this machine by a real setup, one command each.
#
#     sudo examples/doctor-tour.sh            # IOLAB=... to use another iolab; DIR=... for the scratch files
#
# Needs root (loop devices, mkfs, mount, swapon). It only touches what it creates: files in a scratch
# directory under $DIR (default /var/tmp, which should be a real disk file system) and loop devices
# over those files; everything is unmounted, swapped off, detached and removed at the end, also on Ctrl-C.
# For each code it prints the command, then the finding lines iolab printed for that code.
set -u
IOLAB=${IOLAB:-iolab}
W=$(mktemp -d "${DIR:-/var/tmp}/doctor-tour.XXXXXX")
HOLDER=""

cleanup() {
    [ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null && wait "$HOLDER" 2>/dev/null
    # the loop devices over our files (found by backing file: loop() runs in a subshell)
    for l in $(losetup -l -n -O NAME,BACK-FILE | awk -v w="$W/" 'index($2, w) == 1 { print $1 }'); do
        echo "write back" >"/sys/block/${l#/dev/}/queue/write_cache" # outlives the loop device otherwise
        swapoff "$l" 2>/dev/null
        umount "$l" 2>/dev/null
        losetup -d "$l" 2>/dev/null
    done
    swapoff "$W/swapfile" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loop device over a new file of $2 MiB; extra losetup flags after that.
loop() {
    local file=$W/$1 mib=$2
    shift 2
    truncate -s "${mib}M" "$file"
    losetup -f --show "$@" "$file" || exit 1
}

# show CODE COMMAND...: run it, print the lines of that finding (first line and its evidence/fix)
show() {
    local code=$1
    shift
    printf '\n== %s\n$ %s\n' "$code" "$*"
    "$@" 2>&1 | awk -v c="$code" '
        index($0, c) { on = 1; print; next }
        on && /^ +(evidence|fix):/ { print; next }
        { on = 0 }'
}

dd if=/dev/urandom of="$W/data.bin" bs=1M count=64 status=none
cat "$W/data.bin" >/dev/null # cached: what a naive read benchmark then measures

FIO_NAIVE=(-- fio --name=t "--filename=$W/data.bin" --size=64m --rw=read --bs=4k --iodepth=16 --numjobs=2
    --runtime=3 --time_based)
show IOL-CACHE-001 "$IOLAB" doctor "${FIO_NAIVE[@]}"
show IOL-CACHE-002 "$IOLAB" doctor "${FIO_NAIVE[@]}"
show IOL-ENGINE-001 "$IOLAB" doctor "${FIO_NAIVE[@]}"
show IOL-JOBS-001 "$IOLAB" doctor "${FIO_NAIVE[@]}"
show IOL-RAMP-001 "$IOLAB" doctor "${FIO_NAIVE[@]}"
show IOL-TIME-001 "$IOLAB" doctor "${FIO_NAIVE[@]}"

show IOL-TARGET-001 "$IOLAB" doctor /dev/iolab-tour-typo

LOOP_DIO=$(loop dio.img 64 --direct-io=on)
show IOL-TARGET-002 "$IOLAB" doctor "$LOOP_DIO"
LOOP_BUFFERED=$(loop buffered.img 64)
show IOL-TARGET-003 "$IOLAB" doctor "$LOOP_BUFFERED"

truncate -s 64M "$W/sparse.img"
show IOL-DATA-001 "$IOLAB" doctor -- fio --name=t "--filename=$W/sparse.img" --rw=randread --bs=4k --direct=1
show IOL-ALIGN-001 "$IOLAB" doctor -- fio --name=t "--filename=$W/data.bin" --rw=randread --bs=1000 --direct=1
show IOL-BUF-001 "$IOLAB" doctor -- fio --name=t "--filename=$LOOP_DIO" --rw=write --bs=64k --direct=1 \
    --zero_buffers=1
show IOL-SYNC-001 "$IOLAB" doctor -- fio --name=t "--filename=$W/w.dat" --rw=write --bs=64k --size=32m
show IOL-PLAN-001 "$IOLAB" doctor -- fio --name=t "--filename=$W/missing.dat" --rw=randread --bs=4k

# The lie detector: what the devices under the target saw, against what was issued.
show IOL-LIE-001 "$IOLAB" doctor --run -- dd "if=$W/data.bin" of=/dev/null bs=1M
show IOL-LIE-002 "$IOLAB" run --name=w "--filename=$W/w.dat" --rw=write --bs=64k --size=64m
FS_LOOP=$(loop fs.img 128 --direct-io=on)
mkfs.ext4 -q -F "$FS_LOOP"
mkdir -p "$W/mnt"
mount "$FS_LOOP" "$W/mnt"
show IOL-LIE-003 "$IOLAB" run --name=small "--filename=$W/mnt/small.dat" --rw=randwrite --bs=512 --size=1m \
    --fsync=1
show IOL-LIE-004 "$IOLAB" run --name=merged "--filename=$LOOP_DIO" --rw=write --bs=4k --size=16m --end_fsync=1
# a write-through device needs no flush: the kernel drops them (the setting outlives losetup -d: restore it)
echo "write through" >"/sys/block/${LOOP_DIO#/dev/}/queue/write_cache"
show IOL-LIE-005 "$IOLAB" run --name=synced "--filename=$LOOP_DIO" --rw=write --bs=1m --size=8m --direct=1 \
    --fsync=1
echo "write back" >"/sys/block/${LOOP_DIO#/dev/}/queue/write_cache"

# The safety gate: writes to block devices that hold data.
show IOL-SAFE-001 "$IOLAB" run --name=w "--filename=$FS_LOOP" --rw=write --bs=1m --size=8m --direct=1
ln -s "$FS_LOOP" "$W/innocent-name"
show IOL-SAFE-001 "$IOLAB" run --name=w "--filename=$W/innocent-name" --rw=write --bs=1m --size=8m --direct=1
umount "$W/mnt"
show IOL-SAFE-004 "$IOLAB" run --name=w "--filename=$FS_LOOP" --rw=write --bs=1m --size=8m --direct=1
printf '\n(with --allow-destroy=%s the same write runs:)\n' "$FS_LOOP"
"$IOLAB" run --allow-destroy="$FS_LOOP" --name=w "--filename=$FS_LOOP" --rw=write --bs=1m --size=8m --direct=1 \
    --output-format=terse | cut -d';' -f1-3
SWAP_LOOP=$(loop swap.img 64)
mkswap -q "$SWAP_LOOP" && swapon "$SWAP_LOOP"
show IOL-SAFE-003 "$IOLAB" run --name=w "--filename=$SWAP_LOOP" --rw=write --bs=1m --size=8m --direct=1
swapoff "$SWAP_LOOP"
python3 -c 'import os, sys, time; os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL); time.sleep(600)' "$LOOP_BUFFERED" &
HOLDER=$!
sleep 0.5
show IOL-SAFE-005 "$IOLAB" run --name=w "--filename=$LOOP_BUFFERED" --rw=write --bs=1m --size=8m --direct=1
# ...and to regular files that are a loop device's backing file or an active swap file
ln -s "$W/dio.img" "$W/looks-like-scratch.dat"
show IOL-SAFE-006 "$IOLAB" run --name=w "--filename=$W/looks-like-scratch.dat" --rw=write --bs=1m --size=8m
dd if=/dev/zero of="$W/swapfile" bs=1M count=64 status=none
chmod 600 "$W/swapfile"
mkswap -q "$W/swapfile" && swapon "$W/swapfile"
show IOL-SAFE-007 "$IOLAB" run --name=w "--filename=$W/swapfile" --rw=write --bs=1m --size=8m
swapoff "$W/swapfile"
if [ -e /sys/module/dm_mod ]; then
    echo; echo "== IOL-SAFE-002: run tests/test_doctor_safety.py (needs device-mapper to make a holder)"
else
    printf '\n== IOL-SAFE-002: not shown: this kernel has no device-mapper, so no holder can be made here\n'
fi
