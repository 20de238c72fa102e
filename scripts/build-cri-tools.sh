#!/usr/bin/env bash
# Builds crictl (cri-tools) with `go install` from the Go module proxy into a cache
# keyed by version, outside the clone, and links it into the project as
# .cache/cri-tools-<version>. Skips the build when cached. The end-to-end suite uses
# crictl to drive containerd's CRI plugin (the only consumer of a configured
# default runtime).
set -euo pipefail

version="${CRI_TOOLS_VERSION:-1.37.0}"
cache_root="${LXCRI_CACHE:-/var/cache/lxcri}"
dest="$cache_root/cri-tools-$version"
repo_root="$(cd "$(dirname "$0")/.." && pwd)"

if [ -x "$dest/bin/crictl" ]; then
	echo "cri-tools $version: cached in $dest/bin"
else
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
	command -v go >/dev/null 2>&1 || {
		echo "build-cri-tools.sh: no go toolchain found" >&2
		exit 1
	}
	mkdir -p "$dest/bin"
	echo "cri-tools $version: building crictl with $(go version)"
	start=$(date +%s)
	GOBIN="$dest/bin" GOFLAGS="-trimpath" go install \
		-ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=v$version" \
		"sigs.k8s.io/cri-tools/cmd/crictl@v$version"
	[ -x "$dest/bin/crictl" ]
	echo "cri-tools $version: built in $(($(date +%s) - start))s"
fi

mkdir -p "$repo_root/.cache"
ln -sfn "$dest" "$repo_root/.cache/cri-tools-$version"
"$dest/bin/crictl" --version
