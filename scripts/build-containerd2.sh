#!/usr/bin/env bash
# Builds containerd 2.x (containerd, ctr, containerd-shim-runc-v2) with `go install`
# from the Go module proxy into a cache keyed by version, outside the clone, and links
# it into the project as .cache/containerd-<version>. Skips the build when cached.
set -euo pipefail

version="${CONTAINERD2_VERSION:-2.4.2}"
cache_root="${LXCRI_CACHE:-/var/cache/lxcri}"
dest="$cache_root/containerd-$version"
bins=(containerd ctr containerd-shim-runc-v2)
repo_root="$(cd "$(dirname "$0")/.." && pwd)"

have_all() {
	local b
	for b in "${bins[@]}"; do
		[ -x "$dest/bin/$b" ] || return 1
	done
}

if have_all; then
	echo "containerd $version: cached in $dest/bin"
else
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
	command -v go >/dev/null 2>&1 || {
		echo "build-containerd2.sh: no go toolchain found" >&2
		exit 1
	}
	mkdir -p "$dest/bin"
	echo "containerd $version: building with $(go version)"
	start=$(date +%s)
	GOBIN="$dest/bin" GOFLAGS="-trimpath" go install \
		"github.com/containerd/containerd/v2/cmd/containerd@v$version" \
		"github.com/containerd/containerd/v2/cmd/ctr@v$version" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@v$version"
	have_all
	echo "containerd $version: built in $(($(date +%s) - start))s"
fi

mkdir -p "$repo_root/.cache"
ln -sfn "$dest" "$repo_root/.cache/containerd-$version"
"$dest/bin/containerd" --version
