#!/usr/bin/env bash
# Builds SeaweedFS's `weed`, pinned, for the result store's tests against a real
# S3-compatible server:
#   .ci/seaweedfs.sh [DIR]     (default: dirname of $IMAGEGATE_WEED, else
#                               /var/cache/imagegate-ci/seaweedfs)
# and leaves DIR/weed; the tests find it through IMAGEGATE_WEED=DIR/weed.
#
# SeaweedFS publishes no semver tags to the Go module proxy, so the pin is a
# pseudo-version (SeaweedFS 4.53). `go install` refuses its module (go.mod has
# replace directives), so the module is downloaded and `./weed` built inside it:
# about 6 CPU-minutes, 7-8 minutes on two shared cores. A binary already built
# from the pinned version (stamped into `weed version` below) is kept, so a warm
# cache costs nothing. Needs Go on PATH.
set -euo pipefail

SEAWEEDFS_MODULE=github.com/seaweedfs/seaweedfs
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6  # SeaweedFS 4.53 (2026-11-09)

dir=${1:-$(dirname "${IMAGEGATE_WEED:-/var/cache/imagegate-ci/seaweedfs/weed}")}
mkdir -p "$dir"
weed="$dir/weed"

if [ -x "$weed" ] && "$weed" version 2>/dev/null | grep -q -- "$SEAWEEDFS_VERSION"; then
  echo "weed $SEAWEEDFS_VERSION: already in $dir"
  exit 0
fi

echo "weed $SEAWEEDFS_VERSION: go mod download, then go build ./weed (several minutes)"
source_dir=$(go mod download -json "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
(
  cd "$source_dir"
  # Stamp the pin into `weed version` (the check above), strip symbols (a third
  # of the size); no cgo, so the binary needs nothing but the kernel.
  CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build \
    -ldflags "-s -w -X $SEAWEEDFS_MODULE/weed/util/version.COMMIT=$SEAWEEDFS_VERSION" \
    -o "$weed.partial" ./weed
)
mv -f "$weed.partial" "$weed"
"$weed" version | head -1
echo "weed in $dir"
