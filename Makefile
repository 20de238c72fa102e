# lxcri: build, install and test.
# Fresh Debian bookworm, as root:  make install && make test

SHELL := /bin/bash
CARGO ?= cargo
PREFIX ?= /usr/local
LIBEXEC_DIR ?= $(PREFIX)/libexec/lxcri
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
STATIC_TARGET := x86_64-unknown-linux-gnu
STATIC_INIT := $(TARGET_DIR)/$(STATIC_TARGET)/release/lxcri-init
STATIC_TESTIMG := $(TARGET_DIR)/$(STATIC_TARGET)/release/lxcri-testimg

.PHONY: all install deps containerd2 cri-tools nerdctl vm build install-bin test lint unit e2e e2e-vm critest bench check-root

all: build

install: check-root deps containerd2 cri-tools nerdctl vm install-bin

deps: check-root
	bash scripts/install-deps.sh

containerd2:
	bash scripts/build-containerd2.sh

# crictl for the CRI end-to-end tests (default runtime set by config).
cri-tools:
	bash scripts/build-cri-tools.sh

# nerdctl for the nerdctl end-to-end tests (against containerd 2.x).
nerdctl:
	bash scripts/build-nerdctl.sh

# The cgroup v2 + systemd VM's initramfs (scripts/vm, cached per kernel).
vm:
	bash scripts/vm/build-initrd.sh

build:
	$(CARGO) build --release --workspace
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p lxcri-libexec \
		--no-default-features --bin lxcri-init --target $(STATIC_TARGET)
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p lxcri-testimg \
		--target $(STATIC_TARGET)

install-bin: check-root build
	install -D -m 0755 $(TARGET_DIR)/release/containerd-shim-lxcri-v2 $(PREFIX)/bin/containerd-shim-lxcri-v2
	install -D -m 0755 $(TARGET_DIR)/release/lxcri $(PREFIX)/bin/lxcri
	install -D -m 0755 $(TARGET_DIR)/release/lxcri-start $(LIBEXEC_DIR)/lxcri-start
	install -D -m 0755 $(TARGET_DIR)/release/lxcri-attach $(LIBEXEC_DIR)/lxcri-attach
	install -D -m 0755 $(TARGET_DIR)/release/lxcri-hook $(LIBEXEC_DIR)/lxcri-hook
	install -D -m 0755 $(STATIC_INIT) $(LIBEXEC_DIR)/lxcri-init
	install -D -m 0755 $(STATIC_TESTIMG) $(LIBEXEC_DIR)/lxcri-testimg

# critest runs before the e2e suite, so that the run still ends on the e2e
# summary; both always run, and either failing fails `make test`.
test: check-root lint unit install-bin
	@status=0; $(MAKE) --no-print-directory critest || status=1; \
		$(MAKE) --no-print-directory e2e || status=1; \
		$(MAKE) --no-print-directory e2e-vm || status=1; exit $$status

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace --exclude lxcri-integration
	$(CARGO) test -p lxcri-integration --lib

# End-to-end suite against private containerd 1.6 and 2.x daemons (needs root).
# A name filter selects scenarios, e.g. `cargo test -p lxcri-integration --test e2e
# -- --test-threads=1 lxcri_containerd_2`. Last in `make test`, so that the run
# ends on the e2e suite's own summary line.
e2e: check-root
	$(CARGO) test -p lxcri-integration --test e2e -- --test-threads=1 --skip v2host:: --skip selinux_vm::

# The end-to-end tests for a pure cgroup v2 host with systemd as PID 1, in one
# boot of the VM of scripts/vm/run.sh (docs/vm.md): the e2e scenarios of
# integration/tests/e2e/v2host.rs plus host-agnostic ones in VM_E2E_EXTRA, then
# the systemd cgroup driver's tests (integration/tests/systemd_vm.rs). The test
# binaries built here run there, against the installed binaries (install-bin
# first). Accelerator: KVM, or qemu's emulator where /dev/kvm cannot run
# Debian's kernel (PVM); LXCRI_VM_ACCEL overrides. Then a second boot with
# SELinux instead of AppArmor (LXCRI_VM_LSM=selinux, reference policy in
# permissive mode) for the e2e scenarios of integration/tests/e2e/selinux_vm.rs
# (VM_SELINUX filters them). VM_BOOTS picks the boots (default both), e.g.
# `make e2e-vm VM_BOOTS=selinux VM_SELINUX=selinux_labels`.
VM_E2E_EXTRA ?= lifecycle::echo_hello:: exec::exec_cwd_and_env::
# Test name filters for a focused run, e.g. `make e2e-vm VM_E2E=v2host::hugetlb
# VM_SYSTEMD=lxcri_lifecycle`; `VM_SYSTEMD=--list` runs no systemd_vm test.
VM_E2E ?= v2host:: $(VM_E2E_EXTRA)
VM_SYSTEMD ?=
VM_SELINUX ?= selinux_vm::
# The boots: apparmor (pure v2, AppArmor: v2host + extras, systemd_vm), hybrid
# (systemd's hybrid cgroup layout: systemd_vm again), selinux (SELinux
# permissive: selinux_vm).
VM_BOOTS ?= apparmor hybrid selinux
VM_TIMEOUT ?= 7200
# The path of integration test target $(1), built if needed (a shell command).
test_exe = $(CARGO) test -p lxcri-integration --test $(1) --no-run --message-format=json \
	| grep '"kind":\["test"\],[^}]*"name":"$(1)"' \
	| sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1
e2e-vm: check-root
	@e2e=$$($(call test_exe,e2e)); sd=$$($(call test_exe,systemd_vm)); \
	test -x "$$e2e" && test -x "$$sd" || { echo "e2e-vm: test binaries missing" >&2; exit 1; }; \
	cd integration || exit 1; a=0; h=0; c=0; \
	case " $(VM_BOOTS) " in *" apparmor "*) \
	../scripts/vm/run.sh --timeout $(VM_TIMEOUT) -- sh -c \
		'"$$0" --test-threads=1 $(VM_E2E); a=$$?; "$$1" --test-threads=1 $(VM_SYSTEMD); b=$$?; \
		 echo "e2e-vm: v2host+extra exit $$a, systemd_vm exit $$b"; [ $$a -eq 0 ] && [ $$b -eq 0 ]' \
		"$$e2e" "$$sd" || a=$$?;; esac; \
	case " $(VM_BOOTS) " in *" hybrid "*) \
	LXCRI_VM_CGROUP=hybrid ../scripts/vm/run.sh --timeout $(VM_TIMEOUT) -- \
		"$$sd" --test-threads=1 $(VM_SYSTEMD) || h=$$?; \
	echo "e2e-vm: systemd_vm on the hybrid boot exit $$h";; esac; \
	case " $(VM_BOOTS) " in *" selinux "*) \
	LXCRI_VM_LSM=selinux ../scripts/vm/run.sh --timeout $(VM_TIMEOUT) -- sh -c \
		'"$$0" --test-threads=1 $(VM_SELINUX); c=$$?; echo "e2e-vm: selinux_vm exit $$c"; exit $$c' \
		"$$e2e" || c=$$?;; esac; \
	[ $$a -eq 0 ] && [ $$h -eq 0 ] && [ $$c -eq 0 ]

# critest (cri-tools' CRI validation suite) against containerd 2.x's CRI plugin,
# handler runc then handler lxcri, each on a fresh pod-network daemon with a
# local registry; prints pass/fail/skip per handler and the tests failing for
# lxcri only (reports in .cache/critest). Fails if lxcri fails a test runc
# passes (issue 6's bar), or on a broken run or a leak; `make test` runs it so.
# --report-only prints the same without failing on the lxcri-only list.
# CRITEST_ARGS e.g. `--focus Networking --handlers lxcri`.
critest: check-root
	$(CARGO) run -p lxcri-integration --bin lxcri-critest -- $(CRITEST_ARGS)

# ctr run --rm wall time, shim RSS and ctr task exec round trip, lxcri vs runc, on containerd 2.x.
bench: check-root
	$(CARGO) run -p lxcri-integration --bin lxcri-bench -- $(BENCH_ARGS)

check-root:
	@if [ "$$(id -u)" -ne 0 ]; then echo "error: this target must run as root" >&2; exit 1; fi
