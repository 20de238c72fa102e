# apparmor.service in the lxcri VM: loads the host's AppArmor profiles
# (/etc/apparmor.d) like Debian's apparmor.systemd, but straight from the
# compiled cache (/var/cache/apparmor, kept on the host across boots, keyed by
# the profiles' content) when it is current; otherwise compiles (and caches)
# them through Debian's script.
set -u
key=$(find /etc/apparmor.d -type f -print0 | sort -z | xargs -0 cat | md5sum | cut -d' ' -f1)
stamp=/var/cache/apparmor/lxcri-vm.key
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
	dir=$(find /var/cache/apparmor -mindepth 1 -maxdepth 1 -type d | head -n 1)
	if [ -n "$dir" ] && apparmor_parser --replace --binary "$dir"/*; then
		exit 0
	fi
fi
/lib/apparmor/apparmor.systemd reload || exit 1
echo "$key" >"$stamp"
