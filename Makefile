# The two commands of the README:
#   make run   - build into .venv (created if missing) and run `iolab quick`
#   make test  - install system and Python test dependencies, build, run the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := fio fio-examples e2fsprogs util-linux kmod python3-venv qemu-utils libnbd-bin python3-libnbd nbdkit strace \
  dosfstools xfsprogs btrfs-progs jfsutils udftools nilfs-tools f2fs-tools exfatprogs squashfs-tools erofs-utils \
  reiserfsprogs ntfs-3g cryptsetup-bin mdadm lvm2 openssl gnutls-bin

.PHONY: run test test-sanitize lint system-deps build difftest

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

build: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'

run: build
	$(BIN)/iolab quick $(ARGS)

# apt-get only when root (CI and these machines); elsewhere the packages must already be there.
# vsock_loopback (where the kernel ships it) lets the vsock NBD test connect to itself.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	  modprobe vsock_loopback 2>/dev/null || true; \
	fi

lint: build
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: system-deps build lint
	$(BIN)/pytest -q $(PYTEST_ARGS)

# The C core under AddressSanitizer/UBSan, in a venv of its own so the normal build stays untouched.
test-sanitize: system-deps
	$(PYTHON) -m venv .venv-asan
	.venv-asan/bin/pip install -q --upgrade pip
	# not editable: the sanitized extension stays in .venv-asan and never replaces the one in src/
	IOLAB_SANITIZE=1 .venv-asan/bin/pip install -q --force-reinstall '.[dev]'
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  .venv-asan/bin/pytest -q -x -p no:cacheprovider $(PYTEST_ARGS)

# The long differential run against fio (the bounded one is tests/test_difftest.py, in `make test`):
#   make difftest DIFFTEST_CASES=2000 DIFFTEST_SEED=7 DIFFTEST_ARGS='--jobs 2'
DIFFTEST_SEED ?= 1
DIFFTEST_CASES ?= 1000
DIFFTEST_REPORT ?= difftest-report.json
difftest: system-deps build
	$(BIN)/python -m tests.difftest --seed $(DIFFTEST_SEED) --cases $(DIFFTEST_CASES) --examples \
	  --report $(DIFFTEST_REPORT) $(DIFFTEST_ARGS)
