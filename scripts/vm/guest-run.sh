# Runs in the VM as the service lxcri-vm-run.service: waits for systemd to
# finish booting, runs the host's command (cmd.sh in the shared run dir) with
# its stdout/stderr on the virtio serial ports lxcri.stdout/lxcri.stderr,
# writes its exit code to the run dir and powers the VM off.
xfer=/run/lxcri-vm
mkdir -p "$xfer"
if ! mount -t 9p -o trans=virtio,version=9p2000.L xfer "$xfer"; then
	echo "lxcri-vm: cannot mount the run dir" >&2
	systemctl poweroff --force --force
fi
echo booted >"$xfer/booted"

state=$(systemctl is-system-running --wait)
echo "lxcri-vm: system $state after $(cut -d' ' -f1 /proc/uptime) s" >"$xfer/boot-state"
if [ "$state" != running ]; then
	systemctl --failed --no-legend >>"$xfer/boot-state" 2>&1
fi

port() {
	for p in /sys/class/virtio-ports/*; do
		if [ "$(cat "$p/name" 2>/dev/null)" = "$1" ]; then
			echo "/dev/$(basename "$p")"
			return
		fi
	done
	echo /dev/console
}
out=$(port lxcri.stdout)
err=$(port lxcri.stderr)

/bin/bash "$xfer/cmd.sh" </dev/null >"$out" 2>"$err"
rc=$?
echo "$rc" >"$xfer/rc.tmp"
mv "$xfer/rc.tmp" "$xfer/rc"
sync
systemctl poweroff --force --force
