#!/usr/bin/env bash
# Builds nerdctl from the Go module proxy into a cache keyed by version, outside
# the clone, and links it into the project as .cache/nerdctl-<version>. Skips the
# build when cached. The end-to-end suite drives the private containerd 2.x with it
# (tests/e2e/nerdctl.rs); nerdctl 2.2.x is built against the containerd 2.2 client
# and speaks the 2.x API.
#
# Not `go install github.com/containerd/nerdctl/v2/cmd/nerdctl@vX`: nerdctl's go.mod
# has a replace directive (its test framework, ./mod/tigron, a nested module that
# is not part of the module zip), which `go install pkg@version` refuses, and the
# package cmd/nerdctl/helpers has test-only helpers in a non-test file
# (testing_linux.go) that import it. So: download the module source with
# `go mod download`, copy it to a scratch dir, drop that file, stub
# mod/tigron/go.mod (nothing in the binary imports tigron) and `go build`.
set -euo pipefail

version="${NERDCTL_VERSION:-2.2.2}"
cache_root="${LXCRI_CACHE:-/var/cache/lxcri}"
dest="$cache_root/nerdctl-$version"
module="github.com/containerd/nerdctl/v2"
repo_root="$(cd "$(dirname "$0")/.." && pwd)"

if [ -x "$dest/bin/nerdctl" ]; then
	echo "nerdctl $version: cached in $dest/bin"
else
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
	command -v go >/dev/null 2>&1 || {
		echo "build-nerdctl.sh: no go toolchain found" >&2
		exit 1
	}
	echo "nerdctl $version: building with $(go version)"
	start=$(date +%s)
	src_dir=$(cd / && go mod download -json "$module@v$version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -n "$src_dir" ] && [ -f "$src_dir/go.mod" ] || {
		echo "build-nerdctl.sh: go mod download $module@v$version failed" >&2
		exit 1
	}
	work=$(mktemp -d /tmp/nerdctl-build.XXXXXX)
	trap 'rm -rf "$work"' EXIT
	cp -r "$src_dir/." "$work/src"
	chmod -R u+w "$work/src"
	rm -f "$work/src/cmd/nerdctl/helpers/testing_linux.go"
	mkdir -p "$work/src/mod/tigron"
	printf 'module github.com/containerd/nerdctl/mod/tigron\n\ngo 1.24\n' >"$work/src/mod/tigron/go.mod"
	mkdir -p "$dest/bin"
	(cd "$work/src" && GOFLAGS="-trimpath" go build \
		-ldflags "-X $module/pkg/version.Version=v$version" \
		-o "$dest/bin/nerdctl.tmp" ./cmd/nerdctl)
	mv "$dest/bin/nerdctl.tmp" "$dest/bin/nerdctl"
	echo "nerdctl $version: built in $(($(date +%s) - start))s"
fi

mkdir -p "$repo_root/.cache"
ln -sfn "$dest" "$repo_root/.cache/nerdctl-$version"
"$dest/bin/nerdctl" --version
