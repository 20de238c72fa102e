# Runs in the VM's initramfs (busybox sh) on the new root before systemd
# starts: $1 is the new root (the host's root under a tmpfs overlay, so
# writes here stay in the VM), $2 the run dir shared by scripts/vm/run.sh.
# Makes the guest a minimal systemd host that boots lxcri-vm.target.
set -e
root=$1
xfer=$2

# The host image may carry container markers; in the VM systemd must see a
# VM (it ignores systemd.* kernel arguments and skips units, AppArmor's
# among them, in a container).
rm -f "$root/.dockerenv" "$root/run/.containerenv"
echo lxcri-vm >"$root/etc/hostname"

# The host's fstab entries can't work in the VM. Scratch dirs that
# containerd, podman and the tests write (nested overlay mounts need an upper
# dir that is not on the overlay root) get their own tmpfs, mounted here
# rather than by systemd units (each costs seconds under TCG); AppArmor's
# compiled profiles persist on the host (tag aacache, see run.sh).
echo "# lxcri VM: mounts made by scripts/vm/setup-root.sh" >"$root/etc/fstab"
for d in /tmp /var/tmp; do
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root$d"
done
for d in /var/lib/containerd /var/lib/containers /var/lib/nerdctl /var/lib/cni /var/lib/lxc; do
	mkdir -p "$root$d"
	mount -t tmpfs -o mode=0711 tmpfs "$root$d"
done
mount -t 9p -o trans=virtio,version=9p2000.L aacache "$root/var/cache/apparmor"

units=$root/etc/systemd/system
mkdir -p "$units" "$root/etc/lxcri-vm"
cp "$xfer/guest-run.sh" "$xfer/apparmor-load.sh" "$root/etc/lxcri-vm/"

# The boot target: sysinit (journald, udev, tmpfiles, apparmor ...) and the
# sockets (dbus), not the host's multi-user services nor its timers.
cat >"$units/lxcri-vm.target" <<'UNIT'
[Unit]
Description=lxcri VM: minimal systemd host
Requires=sysinit.target sockets.target local-fs.target
After=sysinit.target sockets.target local-fs.target
Wants=lxcri-vm-run.service dbus.service
AllowIsolate=yes
UNIT
cat >"$units/lxcri-vm-run.service" <<'UNIT'
[Unit]
Description=lxcri VM: the host's command (scripts/vm/run.sh)
After=sysinit.target sockets.target local-fs.target dbus.service
[Service]
Type=exec
ExecStart=/bin/sh /etc/lxcri-vm/guest-run.sh
TimeoutStartSec=infinity
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
LimitMEMLOCK=infinity
TasksMax=infinity
StandardOutput=journal+console
StandardError=journal+console
UNIT
# AppArmor stays on as on a Debian host, with the host's profiles; loading
# them from the compiled cache directly is much faster than Debian's script.
mkdir -p "$units/apparmor.service.d"
cat >"$units/apparmor.service.d/lxcri-vm.conf" <<'UNIT'
[Service]
ExecStart=
ExecStart=/bin/sh /etc/lxcri-vm/apparmor-load.sh
UNIT

# SELinux mode (LXCRI_VM_LSM=selinux, run.sh): systemd loads the reference
# policy (selinux-policy-default) in permissive mode: the shared root's files
# carry no labels (the host has no SELinux), so an enforcing policy would deny
# the boot. The autorelabel units would relabel the whole root: never here.
if [ "$(cat "$xfer/lsm" 2>/dev/null)" = selinux ]; then
	mkdir -p "$root/etc/selinux"
	printf 'SELINUX=permissive\nSELINUXTYPE=default\n' >"$root/etc/selinux/config"
fi
for u in selinux-autorelabel-mark.service selinux-autorelabel.service; do
	ln -sf /dev/null "$units/$u"
done

# Host services that would fail or wander off in the VM (no network).
# Under qemu's emulator (TCG) every unit costs seconds: the ones a container
# host does not need go too (udev: the guest has no hotplug; sysusers and
# remount-fs: the host's users and root are there already).
for u in systemd-timesyncd.service systemd-networkd-wait-online.service \
	podman.socket uuidd.socket e2scrub_reap.service systemd-pstore.service \
	modprobe@drm.service modprobe@loop.service modprobe@dm_mod.service \
	modprobe@efi_pstore.service systemd-udevd.service systemd-udev-trigger.service \
	systemd-udevd-control.socket systemd-udevd-kernel.socket systemd-udev-settle.service \
	systemd-sysusers.service systemd-remount-fs.service systemd-binfmt.service \
	proc-sys-fs-binfmt_misc.automount systemd-firstboot.service \
	systemd-machine-id-commit.service systemd-random-seed.service \
	systemd-update-utmp.service systemd-repart.service systemd-pcrphase-sysinit.service \
	systemd-pcrphase.service cryptsetup.target veritysetup.target integritysetup.target \
	modprobe@fuse.service sys-fs-fuse-connections.mount systemd-modules-load.service; do
	ln -sf /dev/null "$units/$u"
done
