#!/usr/bin/env bash
# CI: builds the Go, Java and TypeScript client packages and runs each one's example
# against a live gateway on the embedded emulator, the way a service in that
# language would call it: a unary generation, a streamed result over gRPC's default
# 4 MiB receive limit, an edit upload with a mask, an INVALID_ARGUMENT whose
# google.rpc.BadRequest is decoded by that language's own library, and an upload the
# gateway refuses mid-way. Called by .ci/run after the tests; run alone with
#   .ci/polyglot.sh            (needs .venv: python3 tools/dev.py setup)
#
# Go, Java/Maven and Node/npm are preinstalled; modules, artifacts and packages come
# through their registries (caches may be cold). The gateway requires a token; the
# examples send it (IMAGEGATE_TOKEN) as `authorization: Bearer ...`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
started=$SECONDS
step() { printf '\n--- %s (%ss)\n' "$*" "$((SECONDS - started))"; }
# An example that hangs (a stream left open) must fail the run, not stall it.
EXAMPLE_TIMEOUT=300
MVN=(mvn -B -q -ntp -Dstyle.color=never)

work=$(mktemp -d)
gateway_pid=
cleanup() {
  if [ -n "$gateway_pid" ]; then
    kill "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
failed() {
  echo "polyglot: $1 failed; the gateway's last log lines:" >&2
  tail -n 20 "$work/gateway.log" >&2 || true
  exit 1
}

step "gateway on the embedded emulator (no OpenAI key), requiring a token"
# The examples authenticate as a team's service would: a client in a clients file,
# its token made by `imagegate clients add` (printed once, stored only hashed).
IMAGEGATE_TOKEN=$(.venv/bin/imagegate clients add polyglot-examples --file "$work/clients.toml" 2>/dev/null)
export IMAGEGATE_TOKEN
env -u IMAGEGATE_OPENAI_API_KEY -u IMAGEGATE_OPENAI_API_KEY_FILE \
  IMAGEGATE_CLIENTS_FILE="$work/clients.toml" \
  .venv/bin/imagegate serve --host 127.0.0.1 --port 0 --port-file "$work/port" \
  2>"$work/gateway.log" &
gateway_pid=$!
for _ in $(seq 1 300); do
  [ -s "$work/port" ] && break
  kill -0 "$gateway_pid" 2>/dev/null || failed "starting the gateway"
  sleep 0.1
done
[ -s "$work/port" ] || failed "starting the gateway (no port after 30 s)"
export IMAGEGATE_TARGET="127.0.0.1:$(cat "$work/port")"
echo "gateway at $IMAGEGATE_TARGET; the examples send the bearer token of client polyglot-examples"
# ... and without it the gateway refuses, so the examples' success proves they sent it.
.venv/bin/python - <<'PY' || failed "the unauthenticated call"
import os, grpc
from imagegate.v1 import images_service_pb2 as pb, images_service_pb2_grpc, params_pb2
with grpc.insecure_channel(os.environ["IMAGEGATE_TARGET"]) as channel:
    stub = images_service_pb2_grpc.ImagesServiceStub(channel)
    try:
        stub.CreateImage(pb.CreateImageRequest(parameters=params_pb2.GenerationParameters(prompt="x")), timeout=30)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.code()
        print("without a token: UNAUTHENTICATED")
    else:
        raise SystemExit("a call without a token succeeded")
PY

step "Go: module github.com/imagegate/imagegate/client_stubs/go (vet, unit tests, example)"
(
  cd client_stubs/go
  unformatted=$(gofmt -l transfer example)
  [ -z "$unformatted" ] || { echo "gofmt would change: $unformatted"; exit 1; }
  go vet ./...
  go test ./...
  go build -o "$work/go-example" ./example
  timeout "$EXAMPLE_TIMEOUT" "$work/go-example"
) || failed "Go"

step "TypeScript: @imagegate/client-stubs (npm ci, tsc, npm pack, example from the tarball)"
(
  cd client_stubs/typescript
  npm ci --no-audit --no-fund --loglevel=error
  npm run --silent build
  # The example imports the package by name: tsc checks it against the built .d.ts.
  npm run --silent build:example
  mkdir -p "$work/ts-consumer"
  # Already built: --ignore-scripts skips prepack's second tsc run.
  npm pack --silent --ignore-scripts --pack-destination "$work/ts-consumer" >/dev/null
  cp example/dist/live.js "$work/ts-consumer/"
  cd "$work/ts-consumer"
  echo '{"name": "imagegate-ts-consumer", "private": true, "type": "module"}' >package.json
  # As a user installs it: the packed tarball, with @grpc/grpc-js as its peer.
  npm install --no-audit --no-fund --prefer-offline --loglevel=error ./imagegate-client-stubs-*.tgz
  timeout "$EXAMPLE_TIMEOUT" node live.js
) || failed "TypeScript"

step "Java: com.imagegate:imagegate-client-stubs (mvn install: jar + sources jar, example)"
(
  cd client_stubs/java
  "${MVN[@]}" install
  ls target/imagegate-client-stubs-*-sources.jar >/dev/null
  cd example
  # One Maven run compiles and runs it; the timeout also covers resolving its
  # dependencies (grpc-netty-shaded), which takes seconds once cached.
  timeout "$EXAMPLE_TIMEOUT" "${MVN[@]}" compile exec:java
) || failed "Java"

step "polyglot done"
