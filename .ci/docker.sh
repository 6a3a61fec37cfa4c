#!/usr/bin/env bash
# CI: builds the Dockerfile without a Docker engine and probes the running image.
#
#   .ci/docker.sh               build, then run the image and probe it over loopback
#   .ci/docker.sh --build-only  build and check the image's configuration only
#   .ci/docker.sh --clean       remove this script's cache (base tarball, image store)
#
# As DESIGN.md section 8 says: a Debian base made with `mmdebstrap --variant=minbase
# bookworm` (from the mirror this machine's apt uses) is loaded with `podman import`
# as debian:bookworm-slim; `buildah bud --isolation chroot --storage-driver vfs`
# builds the Dockerfile (--format docker, so HEALTHCHECK is kept); `buildah run
# --isolation chroot` runs the image's ENTRYPOINT, which shares the host's network,
# so the server is probed on 127.0.0.1 with `imagegate healthcheck` from .venv and
# answers one CreateImage (on its embedded emulator: no OpenAI key is configured).
#
# Needs root and Debian's apt. State lives outside the repository, under
# $IMAGEGATE_CI_CACHE (default /var/cache/imagegate-ci): the base tarball is made
# once and reused, the image store keeps build layers between runs. Every run
# removes its working containers and the server it started, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

CACHE=${IMAGEGATE_CI_CACHE:-/var/cache/imagegate-ci}
BASE_IMAGE=debian:bookworm-slim
IMAGE=localhost/imagegate:ci
# A store of our own, so that vfs never meets another tool's overlay store.
STORE=(--root "$CACHE/storage" --runroot /run/imagegate-ci --storage-driver vfs)
HOST_CA=/etc/ssl/certs/ca-certificates.crt

mode=full
case "${1:-}" in
  "") ;;
  --build-only) mode=build ;;
  --clean)
    rm -rf "$CACHE" /run/imagegate-ci
    echo "removed $CACHE"
    exit 0 ;;
  *) echo "usage: $0 [--build-only | --clean]" >&2; exit 2 ;;
esac

step() { printf '\n=== docker: %s (%ss)\n' "$*" "$SECONDS"; }
fail() { printf 'docker.sh: FAILED: %s\n' "$*" >&2; exit 1; }
# TMPDIR: buildah keeps RUN --mount=type=cache directories (pip's) under it.
buildah() { TMPDIR=$CACHE/tmp command buildah "${STORE[@]}" "$@"; }
podman() { command podman "${STORE[@]}" "$@"; }

[ "$(id -u)" = 0 ] || fail "needs root (mmdebstrap, buildah chroot isolation)"

# Cleanup of everything this run starts: the server's process group, then the
# working containers. Registered before anything is started.
server_pid=""
containers=()
cleanup() {
  local code=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM -- "-$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  for ctr in "${containers[@]}"; do buildah rm "$ctr" >/dev/null 2>&1 || true; done
  [ -n "${workdir:-}" ] && rm -rf "$workdir"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
workdir=$(mktemp -d)

step "tools (apt: buildah podman mmdebstrap)"
if ! command -v buildah >/dev/null || ! command -v podman >/dev/null \
    || ! command -v mmdebstrap >/dev/null || ! command -v pgrep >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    buildah podman mmdebstrap procps ca-certificates >/dev/null
fi
command buildah --version
mkdir -p "$CACHE/tmp"

step "base image $BASE_IMAGE (mmdebstrap --variant=minbase bookworm)"
# The same Debian mirror(s) as this machine's apt; deb.debian.org if it has none.
mapfile -t sources < <(
  apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 2>/dev/null \
    | awk '$2 ~ /^bookworm(-updates|-security)?$/ && !seen[$0]++ {print "deb " $1 " " $2 " main"}'
)
[ "${#sources[@]}" -gt 0 ] || sources=("deb http://deb.debian.org/debian bookworm main")
mmdebstrap_args=(
  --variant=minbase
  # merged /usr by symlinks, as Debian's images have it (not the usrmerge package,
  # which would pull in perl)
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  # slim like Debian's -slim image: no manuals, docs (copyrights kept), locales
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --aptopt='Acquire::Languages "none"'
  bookworm
)
# The tarball is named after its recipe: a changed recipe or mirror makes a new one.
key=$(printf '%s\n' "${mmdebstrap_args[@]}" "${sources[@]}" | sha256sum | cut -c1-12)
base_tar=$CACHE/debian-bookworm-minbase-$key.tar
if [ ! -s "$base_tar" ]; then
  printf '  %s\n' "${sources[@]}"
  rm -f "$CACHE"/debian-bookworm-minbase-*.tar "$CACHE/partial.tar"
  mmdebstrap --quiet "${mmdebstrap_args[@]}" "$CACHE/partial.tar" "${sources[@]}"
  mv "$CACHE/partial.tar" "$base_tar"
else
  echo "  reusing $base_tar"
fi
if ! podman image exists "$BASE_IMAGE" \
    || [ "$(cat "$CACHE/base-imported" 2>/dev/null)" != "$key" ]; then
  podman rmi --force "$BASE_IMAGE" >/dev/null 2>&1 || true
  podman import --quiet --change 'CMD ["/bin/bash"]' "$base_tar" "$BASE_IMAGE" >/dev/null
  echo "$key" >"$CACHE/base-imported"
fi
podman images --format '  {{.Repository}}:{{.Tag}} {{.Size}}' "$BASE_IMAGE"

step "buildah bud -t $IMAGE (chroot isolation, vfs, docker format)"
secret=()
[ -s "$HOST_CA" ] && secret=(--secret "id=pip_ca,src=$HOST_CA")
bud_start=$SECONDS
buildah bud --isolation chroot --format docker --pull=never --layers \
  "${secret[@]}" --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" -f Dockerfile .
# Tag the build stage too (all cached, seconds), so that pruning the layers this
# build replaced keeps the stage's layers for the next run.
buildah bud --isolation chroot --format docker --pull=never --layers --quiet \
  "${secret[@]}" --build-arg "BASE_IMAGE=$BASE_IMAGE" --target build \
  -t "$IMAGE-build" -f Dockerfile . >/dev/null
buildah rmi --prune >/dev/null 2>&1 || true
echo "  built in $((SECONDS - bud_start))s"

step "image configuration (non-root, port, health check, entrypoint)"
buildah inspect --type image "$IMAGE" >"$workdir/inspect.json"
python3 - "$workdir/inspect.json" >"$workdir/entrypoint" <<'EOF'
import json, sys
with open(sys.argv[1]) as handle:
    config = json.load(handle)["Docker"]["config"]
def need(ok: bool, what: str) -> None:
    if not ok:
        sys.exit(f"docker.sh: FAILED: image config: {what}: {json.dumps(config)}")
user = config.get("User") or ""
need(user not in ("", "0", "root") and not user.startswith(("0:", "root:")), "runs as root")
need("50051/tcp" in (config.get("ExposedPorts") or {}), "does not expose 50051/tcp")
test = (config.get("Healthcheck") or {}).get("Test") or []
need(test[:1] == ["CMD"] and "healthcheck" in test, "no HEALTHCHECK running imagegate healthcheck")
entry = config.get("Entrypoint") or []
need(entry[:2] == ["imagegate", "serve"], "ENTRYPOINT is not imagegate serve")
print(f"  user {user}, exposes 50051/tcp, healthcheck {' '.join(test[1:])}", file=sys.stderr)
sys.stdout.write("\0".join(entry) + "\0")
with open(sys.argv[1] + ".healthcheck", "w") as handle:
    handle.write("\0".join(test[1:]) + "\0")
EOF
mapfile -d '' entrypoint <"$workdir/entrypoint"
mapfile -d '' healthcheck <"$workdir/inspect.json.healthcheck"
echo "  entrypoint ${entrypoint[*]}"
buildah images --format '  {{.Name}}:{{.Tag}} {{.Size}}' "$IMAGE"

ctr=$(buildah from --pull=never --name "imagegate-ci-$$" "$IMAGE")
containers+=("$ctr")
uid=$(buildah run --isolation chroot "$ctr" -- id -u)
[ "$uid" != 0 ] || fail "buildah run executes as root (uid 0)"
echo "  runs as uid $uid"
buildah run --isolation chroot "$ctr" -- imagegate healthcheck --help >/dev/null \
  || fail "the image has no 'imagegate healthcheck' command"
has_serve=yes
buildah run --isolation chroot "$ctr" -- imagegate serve --help >/dev/null 2>&1 || has_serve=no
echo "  imagegate serve in the image: $has_serve"

if [ "$mode" = build ]; then
  step "done (--build-only: the running image was not probed)"
  exit 0
fi
[ "$has_serve" = yes ] || fail "the image has no 'imagegate serve' command, nothing to probe (--build-only skips this part)"

step "host client (.venv: imagegate healthcheck, imagegate.v1 stubs)"
python3 tools/dev.py setup
HOST_PY=$PWD/.venv/bin/python
HOST_IMAGEGATE=$PWD/.venv/bin/imagegate

step "run the image (buildah run --isolation chroot: host network) and probe it"
port=$("$HOST_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$workdir/server.log
run_start=$SECONDS
# No OpenAI key reaches the container (buildah run passes only the image's
# environment), so the server runs on its embedded emulator. setsid: its own
# process group, which cleanup ends by id.
setsid buildah "${STORE[@]}" run --isolation chroot "$ctr" -- "${entrypoint[@]}" --port "$port" \
  >"$log" 2>&1 &
server_pid=$!
echo "  server pid $server_pid, port $port (image ENTRYPOINT + --port $port)"

ready=no
for _ in $(seq 300); do  # up to 60s
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$log" >&2
    fail "the container exited before serving"
  fi
  if "$HOST_IMAGEGATE" healthcheck --target "127.0.0.1:$port" --timeout 1 >/dev/null 2>&1; then
    ready=yes
    break
  fi
  sleep 0.2
done
if [ "$ready" != yes ]; then
  cat "$log" >&2
  fail "no SERVING health answer on 127.0.0.1:$port within 60s"
fi
echo "  SERVING after $((SECONDS - run_start))s"
"$HOST_IMAGEGATE" healthcheck --target "127.0.0.1:$port"
"$HOST_IMAGEGATE" healthcheck --target "127.0.0.1:$port" --service imagegate.v1.ImagesService
# The image's own HEALTHCHECK command, run inside the image (the last --target wins).
buildah run --isolation chroot "$ctr" -- "${healthcheck[@]}" --target "127.0.0.1:$port" \
  || fail "the image's HEALTHCHECK command failed against the running server"

step "one CreateImage through the container"
"$HOST_PY" - "127.0.0.1:$port" <<'EOF' || { cat "$log" >&2; fail "CreateImage through the container"; }
import sys
import time

import grpc
from imagegate.v1 import images_service_pb2, images_service_pb2_grpc, params_pb2

start = time.monotonic()
with grpc.insecure_channel(sys.argv[1]) as channel:
    stub = images_service_pb2_grpc.ImagesServiceStub(channel)
    response = stub.CreateImage(
        images_service_pb2.CreateImageRequest(
            parameters=params_pb2.GenerationParameters(prompt="a lighthouse at dusk, CI probe")
        ),
        timeout=60,
    )
images = response.result.images
assert len(images) == 1, f"expected 1 image, got {len(images)}"
data = images[0].data
assert len(data) > 100, f"expected image bytes, got {len(data)} bytes"
magic = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"RIFF": "WebP", b"GIF8": "GIF"}
kind = next((name for prefix, name in magic.items() if data.startswith(prefix)), "other")
print(f"  CreateImage: 1 image, {len(data)} bytes ({kind}) in {time.monotonic() - start:.2f}s")
EOF

step "the limits database is in the image's data directory, written by the app user"
buildah run --isolation chroot "$ctr" -- \
  sh -c 'test -s "$IMAGEGATE_DATA_DIR/imagegate.sqlite3" && test -O "$IMAGEGATE_DATA_DIR/imagegate.sqlite3"' \
  || fail "no limits database owned by the app user in the image's IMAGEGATE_DATA_DIR"

step "stop the container (SIGTERM to its main process, as docker stop does)"
# buildah answers a signal of its own by SIGKILLing the command, so the signal goes
# to the command itself: the child of buildah-chroot-exec.
chroot_exec=$(pgrep -g "$server_pid" -f '^buildah-chroot-exec ' | head -n1)
main_pid=$(pgrep -P "$chroot_exec" | head -n1)
[ -n "$main_pid" ] || fail "cannot find the container's main process"
kill -TERM "$main_pid"
stopped=no
for _ in $(seq 150); do  # up to 30s
  kill -0 "$server_pid" 2>/dev/null || { stopped=yes; break; }
  sleep 0.2
done
[ "$stopped" = yes ] || { cat "$log" >&2; fail "the server did not stop within 30s of SIGTERM"; }
exit_code=0
wait "$server_pid" || exit_code=$?
server_pid=""
echo "  stopped with exit code $exit_code; server log:"
sed 's/^/    | /' "$log"
[ "$exit_code" = 0 ] || fail "the server exited with code $exit_code on SIGTERM (expected 0)"

step "done"
