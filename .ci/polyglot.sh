#!/usr/bin/env bash
# CI: builds the Go, Java and TypeScript client packages and runs each one's example
# against a live gateway on the embedded emulator, the way a service in that
# language would call it: a unary generation, a streamed result over gRPC's default
# 4 MiB receive limit, an edit upload with a mask, an INVALID_ARGUMENT whose
# google.rpc.BadRequest is decoded by that language's own library, an upload the
# gateway refuses mid-way, GetQuota, and a stored result (DELIVERY_STORED) fetched by
# its link. Then, with that language's default limits,
# an upstream error whose code and param are 5,000 characters each must still reach
# the caller as its status with x-request-id (issue 20). Then the programs the
# package READMEs (and any other *.md) show are built as written, outside the
# repository, from the packed package, and run (.ci/readme-snippets.sh); the docs'
# Python GetQuota program too. Called by .ci/run after the tests; run alone with
#   .ci/polyglot.sh            (needs .venv: python3 tools/dev.py setup)
#
# Go, Java/Maven and Node/npm are preinstalled; modules, artifacts and packages come
# through their registries (caches may be cold). The gateway requires a token; the
# examples send it (IMAGEGATE_TOKEN) as `authorization: Bearer ...`.
# A failed step does not stop the others: the script ends with the list of failures.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
started=$SECONDS
step() { printf '\n--- %s (%ss)\n' "$*" "$((SECONDS - started))"; }
# An example that hangs (a stream left open) must fail the run, not stall it.
EXAMPLE_TIMEOUT=300
MVN=(mvn -B -q -ntp -Dstyle.color=never)
CLIENT=polyglot-examples
# What the second gateway's upstream answers to every call: for the examples, an
# error with 5,000-character code and param; for the READMEs' error handling, a
# plain 400 (invalid_value).
LONG_ERROR_FAULT="400;code-len=5000;param-len=5000"
PLAIN_ERROR_FAULT="400"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
# Failures to start the gateways end the run (nothing else can be checked).
abort() {
  echo "polyglot: $1 failed; the last log lines:" >&2
  tail -n 20 "$work"/*.log >&2 || true
  exit 1
}
failures=()
# attempt NAME FUNCTION: runs FUNCTION in a subshell with errexit in force (a
# background job: `if ! f` would switch errexit off inside f), records a failure.
attempt() {
  local name=$1
  shift
  ("$@") &
  if ! wait $!; then
    failures+=("$name")
    echo "polyglot: $name FAILED; the gateways' last log lines:" >&2
    tail -n 5 "$work/gateway.log" "$work/failing-gateway.log" >&2 || true
  fi
}

# wait_for_file FILE PID WHAT: up to 30 s for a process to write its port.
wait_for_file() {
  for _ in $(seq 1 300); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || abort "$3"
    sleep 0.1
  done
  abort "$3 (nothing after 30 s)"
}

step "gateways: one on the embedded emulator, one whose upstream refuses every call"
# The examples authenticate as a team's service would: a client in a clients file,
# its token made by `imagegate clients add` (printed once, stored only hashed).
IMAGEGATE_TOKEN=$(.venv/bin/imagegate clients add "$CLIENT" --file "$work/clients.toml" 2>/dev/null)
export IMAGEGATE_TOKEN
# Two gateways side by side: each its own data directory and result store link port
# (a free one; the default 50053 would be taken by the first).
env -u IMAGEGATE_OPENAI_API_KEY -u IMAGEGATE_OPENAI_API_KEY_FILE -u IMAGEGATE_OPENAI_BASE_URL \
  IMAGEGATE_CLIENTS_FILE="$work/clients.toml" \
  IMAGEGATE_DATA_DIR="$work/data" IMAGEGATE_STORE_HTTP_PORT=0 \
  .venv/bin/imagegate serve --host 127.0.0.1 --port 0 --port-file "$work/port" \
  2>"$work/gateway.log" &
pids+=($!)
# The second gateway cannot use its embedded emulator (the gateway forwards no
# caller header, and its emulator has no address of its own): a standalone one,
# whose default faults this script sets over POST /_emulator/faults.
emulator_key=$(.venv/bin/python -c 'import secrets; print("sk-polyglot-" + secrets.token_hex(8))')
.venv/bin/imagegate emulator --host 127.0.0.1 --port 0 --api-key "$emulator_key" \
  --faults "$LONG_ERROR_FAULT" >"$work/emulator.out" 2>"$work/emulator.log" &
pids+=($!)
wait_for_file "$work/emulator.out" "${pids[1]}" "starting the emulator"
emulator_url=$(sed -n 's/^imagegate emulator listening on //p' "$work/emulator.out")
[ -n "$emulator_url" ] || abort "reading the emulator's address"
env -u IMAGEGATE_OPENAI_API_KEY_FILE \
  IMAGEGATE_CLIENTS_FILE="$work/clients.toml" \
  IMAGEGATE_DATA_DIR="$work/failing-data" IMAGEGATE_STORE_HTTP_PORT=0 \
  IMAGEGATE_OPENAI_BASE_URL="$emulator_url" IMAGEGATE_OPENAI_API_KEY="$emulator_key" \
  .venv/bin/imagegate serve --host 127.0.0.1 --port 0 --port-file "$work/failing-port" \
  2>"$work/failing-gateway.log" &
pids+=($!)
wait_for_file "$work/port" "${pids[0]}" "starting the gateway"
wait_for_file "$work/failing-port" "${pids[2]}" "starting the failing gateway"
export IMAGEGATE_TARGET="127.0.0.1:$(cat "$work/port")"
failing_target="127.0.0.1:$(cat "$work/failing-port")"
echo "gateway at $IMAGEGATE_TARGET; refusing gateway at $failing_target (upstream $emulator_url)"

# upstream_faults TEXT: what the refusing gateway's upstream answers from now on.
upstream_faults() {
  "$ROOT/.venv/bin/python" - "${emulator_url%/v1}" "$1" <<'PY'
import json, sys, urllib.request
origin, faults = sys.argv[1], sys.argv[2]
request = urllib.request.Request(
    origin + "/_emulator/faults", json.dumps({"faults": faults}).encode(),
    {"content-type": "application/json"},
)
with urllib.request.urlopen(request, timeout=10) as answer:
    assert answer.status == 200, answer.status
PY
}

# ... and without the token the gateway refuses, so the examples' success proves they sent it.
.venv/bin/python - <<'PY' || abort "the unauthenticated call"
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

# Shared by the README runs: where they build, which client and gateway they expect.
export SNIPPETS_WORK="$work/snippets" SNIPPETS_CLIENT="$CLIENT" SNIPPETS_FAILING_TARGET="$failing_target"
readme_snippets() {
  upstream_faults "$PLAIN_ERROR_FAULT"
  "$ROOT/.ci/readme-snippets.sh" "$1"
}
# The examples' check of long upstream error fields (issue 20): every call of theirs
# to the refusing gateway gets the long error.
example_env=(env IMAGEGATE_LONG_ERROR_TARGET="$failing_target")

go_example() {
  cd client_stubs/go
  # -trimpath, as the README programs' build uses it: compiled dependencies are then
  # cached by module version, not by module cache path, and that build (whose module
  # cache is its own) reuses them instead of compiling grpc-go again.
  export GOFLAGS="${GOFLAGS:-} -trimpath"
  unformatted=$(gofmt -l transfer example)
  [ -z "$unformatted" ] || { echo "gofmt would change: $unformatted"; exit 1; }
  go vet ./...
  go test ./...
  go build -o "$work/go-example" ./example
  upstream_faults "$LONG_ERROR_FAULT"
  timeout "$EXAMPLE_TIMEOUT" "${example_env[@]}" "$work/go-example"
}
step "Go: module github.com/imagegate/imagegate/client_stubs/go (vet, unit tests, example)"
attempt "Go example" go_example
step "Go: the README's programs, as written, from the module served as v0.1.0"
attempt "Go README programs" readme_snippets go

ts_example() {
  cd client_stubs/typescript
  # npm ci runs `prepare`, which builds dist/ (tsc).
  npm ci --no-audit --no-fund --loglevel=error
  # The example imports the package by name: tsc checks it against the built .d.ts.
  npm run --silent build:example
  mkdir -p "$work/ts-consumer" "$work/ts-package"
  # Already built: --ignore-scripts skips prepare's second tsc run.
  npm pack --silent --ignore-scripts --pack-destination "$work/ts-package" >/dev/null
  cp example/dist/live.js "$work/ts-consumer/"
  cd "$work/ts-consumer"
  echo '{"name": "imagegate-ts-consumer", "private": true, "type": "module"}' >package.json
  # As a user installs it: the packed tarball, with @grpc/grpc-js as its peer.
  npm install --no-audit --no-fund --prefer-offline --loglevel=error "$work"/ts-package/imagegate-client-stubs-*.tgz
  upstream_faults "$LONG_ERROR_FAULT"
  timeout "$EXAMPLE_TIMEOUT" "${example_env[@]}" node live.js
}
# `npm install --install-links <folder>` on a fresh copy (no dist/, no node_modules):
# prepare installs the build tools and builds, npm packs it, the import works and the
# client accepts the application's own grpc-js credentials.
ts_folder_install() {
  mkdir -p "$work/ts-folder/app"
  git ls-files -z --cached --others --exclude-standard -- client_stubs/typescript \
    | xargs -0 tar -cf - | tar -xf - -C "$work/ts-folder"
  cd "$work/ts-folder/app"
  echo '{"name": "imagegate-ts-folder-install", "private": true, "type": "module"}' >package.json
  npm install --no-audit --no-fund --prefer-offline --loglevel=error \
    --install-links ../client_stubs/typescript @grpc/grpc-js
  node --input-type=module -e '
    import { credentials } from "@grpc/grpc-js";
    import { createQuotaClient } from "@imagegate/client-stubs";
    createQuotaClient("127.0.0.1:1", credentials.createInsecure()).close();
    console.log("npm install --install-links <folder>: dist/ built, one @grpc/grpc-js");'
}
step "TypeScript: @imagegate/client-stubs (npm ci, tsc, npm pack, example from the tarball)"
attempt "TypeScript example" ts_example
step "TypeScript: npm install --install-links <folder> of a fresh copy"
attempt "TypeScript folder install" ts_folder_install
step "TypeScript: the README's programs, as written, from the npm pack tarball"
SNIPPETS_TS_TARBALL=$(ls "$work"/ts-package/imagegate-client-stubs-*.tgz 2>/dev/null || true)
export SNIPPETS_TS_TARBALL
attempt "TypeScript README programs" readme_snippets ts

java_example() {
  cd client_stubs/java
  "${MVN[@]}" install
  ls target/imagegate-client-stubs-*-sources.jar >/dev/null
  cd example
  upstream_faults "$LONG_ERROR_FAULT"
  # One Maven run compiles and runs it; the timeout also covers resolving its
  # dependencies (grpc-netty-shaded), which takes seconds once cached.
  timeout "$EXAMPLE_TIMEOUT" "${example_env[@]}" "${MVN[@]}" compile exec:java
}
step "Java: com.imagegate:imagegate-client-stubs (mvn install: jar + sources jar, example)"
attempt "Java example" java_example
step "Java: the README's programs, as written, against the installed artifact"
attempt "Java README programs" readme_snippets java

python_snippets() {
  python3 -m venv "$work/python"
  "$work/python/bin/pip" install --quiet --disable-pip-version-check -c constraints.txt ./client_stubs/python
  SNIPPETS_PYTHON="$work/python" readme_snippets python
}
step "Python: the docs' programs, as written, with the client stubs installed in a new venv"
attempt "Python docs programs" python_snippets

step "polyglot done"
if [ "${#failures[@]}" -gt 0 ]; then
  printf 'polyglot: FAILED: %s\n' "${failures[@]}" >&2
  exit 1
fi
