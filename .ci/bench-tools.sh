#!/usr/bin/env bash
# Installs the benchmark's native load generators, pinned, with `go install`:
#   .ci/bench-tools.sh [DIR]      (default $IMAGEGATE_BENCH_TOOLS, else
#                                  /var/cache/imagegate-ci/gotools)
# ghz drives the gateway (gRPC), hey the emulator (HTTP); `imagegate bench --tools DIR`
# (or IMAGEGATE_BENCH_TOOLS=DIR) finds them there. A binary already built from the
# pinned version is kept, so a warm cache costs nothing. Needs Go on PATH; the
# modules come from the Go module proxy.
set -euo pipefail

GHZ_VERSION=v0.120.0  # github.com/bojand/ghz; `@latest` resolves to an older v0.93.0
HEY_VERSION=v0.1.5    # github.com/rakyll/hey

dir=${1:-${IMAGEGATE_BENCH_TOOLS:-/var/cache/imagegate-ci/gotools}}
mkdir -p "$dir"

install() {
  local name=$1 package=$2 module=$3 version=$4
  if [ -x "$dir/$name" ] && go version -m "$dir/$name" 2>/dev/null \
      | grep -q "^[[:space:]]*mod[[:space:]]*$module[[:space:]]*$version[[:space:]]"; then
    echo "$name $version: already in $dir"
    return
  fi
  echo "$name $version: go install $package@$version"
  GOBIN="$dir" GOFLAGS=-buildvcs=false go install "$package@$version"
}

install ghz github.com/bojand/ghz/cmd/ghz github.com/bojand/ghz "$GHZ_VERSION"
install hey github.com/rakyll/hey github.com/rakyll/hey "$HEY_VERSION"
echo "native load generators in $dir"
