#!/usr/bin/env bash
# Builds the lxcri VM's initramfs for a Debian kernel: busybox-static, the
# modules to mount a virtio-9p root under an overlay, and scripts/vm/init.
# Cached in /var/cache/lxcri/vm/<kernel version>/, keyed by the init script and
# this script, so a reused machine skips the build. Prints the directory.
# Usage: build-initrd.sh [KERNEL_VERSION]   (default: newest /boot/vmlinuz-*)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kver=${1:-${LXCRI_VM_KERNEL:-}}
if [ -z "$kver" ]; then
	kver=$(ls /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V | tail -n 1)
fi
if [ -z "$kver" ] || [ ! -f "/boot/vmlinuz-$kver" ] || [ ! -d "/lib/modules/$kver" ]; then
	echo "build-initrd.sh: no Debian kernel (/boot/vmlinuz-$kver, /lib/modules/$kver): run scripts/install-deps.sh (linux-image-amd64)" >&2
	exit 1
fi
if [ ! -x /bin/busybox ]; then
	echo "build-initrd.sh: /bin/busybox missing (package busybox-static)" >&2
	exit 1
fi

cache=/var/cache/lxcri/vm/$kver
key=$(cat "$here/init" "$here/build-initrd.sh" /bin/busybox | sha256sum | cut -c1-16)
if [ -f "$cache/initrd.img" ] && [ "$(cat "$cache/key" 2>/dev/null)" = "$key" ]; then
	echo "$cache"
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,dev,proc,sys,modules}
cp /bin/busybox "$work/bin/busybox"
install -m 0755 "$here/init" "$work/init"

# The modules (and their dependencies, in load order) that are not built into
# Debian's kernel: virtio PCI transport, 9p over virtio, overlayfs, virtio
# serial ports (the command's stdout/stderr), virtio disks (the scratch disk).
: >"$work/modules/order"
for m in virtio_pci 9pnet_virtio 9p overlay virtio_console virtio_blk; do
	modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | while read -r ko; do
	case "$ko" in
	*.ko) cp "$ko" "$work/modules/" ;;
	*.ko.xz) xz -dc "$ko" >"$work/modules/$(basename "$ko" .xz)"; ko=${ko%.xz} ;;
	*.ko.zst) zstd -dqc "$ko" >"$work/modules/$(basename "$ko" .zst)"; ko=${ko%.zst} ;;
	*) echo "build-initrd.sh: unexpected module $ko" >&2; exit 1 ;;
	esac
	basename "$ko" >>"$work/modules/order"
done
if [ ! -s "$work/modules/order" ]; then
	echo "build-initrd.sh: no modules found for $kver" >&2
	exit 1
fi

mkdir -p "$cache"
(cd "$work" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$cache/initrd.img.tmp"
mv "$cache/initrd.img.tmp" "$cache/initrd.img"
ln -sf "/boot/vmlinuz-$kver" "$cache/vmlinuz"
echo "$key" >"$cache/key"
echo "$cache"
