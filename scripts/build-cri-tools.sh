#!/usr/bin/env bash
# Builds crictl and critest (cri-tools) from the Go module proxy into a cache
# keyed by version, outside the clone, and links it into the project as
# .cache/cri-tools-<version>. Skips what is cached. The end-to-end suite uses
# crictl to drive containerd's CRI plugin; `make critest` runs critest, the CRI
# validation suite, against the lxcri and runc handlers.
#
# crictl: `go install`. critest is a compiled Go test binary (`go test -c` of
# sigs.k8s.io/cri-tools/cmd/critest, as cri-tools' own Makefile builds it): the
# module source comes from `go mod download` and is built in place (read-only
# module cache; only the output goes to the cache dir).
set -euo pipefail

version="${CRI_TOOLS_VERSION:-1.37.0}"
cache_root="${LXCRI_CACHE:-/var/cache/lxcri}"
dest="$cache_root/cri-tools-$version"
module="sigs.k8s.io/cri-tools"
ldflags="-X $module/pkg/version.Version=v$version"
repo_root="$(cd "$(dirname "$0")/.." && pwd)"

need_go() {
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
	command -v go >/dev/null 2>&1 || {
		echo "build-cri-tools.sh: no go toolchain found" >&2
		exit 1
	}
}

if [ -x "$dest/bin/crictl" ]; then
	echo "cri-tools $version: crictl cached in $dest/bin"
else
	need_go
	mkdir -p "$dest/bin"
	echo "cri-tools $version: building crictl with $(go version)"
	start=$(date +%s)
	GOBIN="$dest/bin" GOFLAGS="-trimpath" go install -ldflags "$ldflags" \
		"$module/cmd/crictl@v$version"
	[ -x "$dest/bin/crictl" ]
	echo "cri-tools $version: crictl built in $(($(date +%s) - start))s"
fi

if [ -x "$dest/bin/critest" ]; then
	echo "cri-tools $version: critest cached in $dest/bin"
else
	need_go
	mkdir -p "$dest/bin"
	echo "cri-tools $version: building critest (go test -c) with $(go version)"
	start=$(date +%s)
	src_dir=$(cd / && go mod download -json "$module@v$version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -n "$src_dir" ] && [ -f "$src_dir/go.mod" ] || {
		echo "build-cri-tools.sh: go mod download $module@v$version failed" >&2
		exit 1
	}
	(cd "$src_dir" && CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod" go test -c \
		-ldflags "$ldflags" -o "$dest/bin/critest.tmp" ./cmd/critest)
	mv "$dest/bin/critest.tmp" "$dest/bin/critest"
	echo "cri-tools $version: critest built in $(($(date +%s) - start))s"
fi

mkdir -p "$repo_root/.cache"
ln -sfn "$dest" "$repo_root/.cache/cri-tools-$version"
"$dest/bin/crictl" --version
"$dest/bin/critest" --version
