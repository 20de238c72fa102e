#!/usr/bin/env bash
# Installs every Debian package lxcri needs to build and to run its tests.
# Idempotent; run as root on Debian bookworm.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: must run as root" >&2
	exit 1
fi

packages=(
	# build: liblxc headers + libclang for bindgen (lxc-sys), pkg-config, a C toolchain
	build-essential
	pkg-config
	libclang-dev
	lxc
	lxc-dev
	# seccomp profiles are compiled with libseccomp (runtime-core)
	libseccomp-dev
	# end-to-end tests: containerd 1.6 (Debian), runc, a static busybox for the test rootfs
	containerd
	runc
	busybox-static
	# the lxcri CLI's end-to-end tests: podman and conmon drive it as their runtime
	podman
	conmon
	# CRI tests and critest: a local OCI registry (127.0.0.1, started by the
	# harness), skopeo to push the offline-built images to it, and the CNI
	# plugins (bridge, host-local, loopback, portmap in /usr/lib/cni; portmap
	# calls iptables) for pod networks
	docker-registry
	skopeo
	containernetworking-plugins
	iptables
	# the systemd cgroup driver's D-Bus client is unit-tested against a private
	# dbus-daemon (runtime-core dbus::tests)
	dbus-daemon
	# tools the test harness and scripts call (nsenter, unshare, mount: util-linux;
	# ip and rdma: iproute2, for v2host::rdma's soft-RoCE devices in the VM)
	iproute2
	util-linux
	procps
	coreutils
	tar
	gzip
	ca-certificates
	git
	# the cgroup v2 + systemd VM (scripts/vm): qemu with KVM, Debian's kernel
	# booted with the host's root shared over virtio-9p, cpio for its initramfs,
	# kmod (modprobe; the guest loads dummy and rdma_rxe for v2host::rdma)
	qemu-system-x86
	linux-image-amd64
	cpio
	kmod
	# apparmor_parser and the profiles the VM loads (v2host::apparmor_*)
	apparmor
	# the VM's SELinux mode (LXCRI_VM_LSM=selinux, selinux_vm e2e tests):
	# Debian's reference policy, loaded by systemd at boot in permissive mode
	# (/etc/selinux/config from policycoreutils), getenforce and seinfo. On a
	# host without SELinux in its kernel they change nothing.
	selinux-policy-default
	policycoreutils
	selinux-utils
	setools
)

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${packages[@]}"
