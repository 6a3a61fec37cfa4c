#!/usr/bin/env bash
# CI: builds and runs the programs that the Markdown files show, exactly as written,
# outside the repository, against the packed client package of one language, and
# checks what they print. Called by .ci/polyglot.sh (which starts the gateways and
# packs the packages) once per language:
#
#   .ci/readme-snippets.sh go|ts|java|python
#
# A fenced block right after a marker line is one file of a program:
#
#   <!-- snippet go: fox/main.go -->       a file (path inside the project)
#   <!-- snippet go: setup.sh -->          the README's commands that set the project up
#   <!-- snippet go: run-fox.sh -->        the command that runs program "fox"
#
# Every *.md file git knows (tracked, or new and not ignored) is searched. A file's blocks of one language make one
# project in a scratch directory; a file other than that language's package README
# (client_stubs/<lang>/README.md) starts from the package README's project and
# replaces the files it shows, and only its own programs run (those whose name is a
# path element of a file it shows, e.g. fox for fox/main.go or .../Fox.java). So the
# top-level README can show one program and tag it the same way.
#
# What each program must do (the same in every language):
#   fox    saves fox.png (a PNG) and prints "saved fox.png (N bytes)"; run again
#          against a gateway whose upstream refuses every call (400 invalid_value),
#          it must exit non-zero and print the status (INVALID_ARGUMENT) and the
#          ErrorInfo reason (invalid_value), and save nothing
#   quota  prints "client <id>: $D.DDDDDD spent today (UTC)" with the caller's id and a
#          spend above zero (the examples ran first)
#   stored (optional) asks for DELIVERY_STORED, fetches the image by its link, saves
#          stored.png (a PNG) and prints "saved stored.png (N bytes) from a link to
#          <object>" with the object's reference (<date>/<minute>/<client>/...)
#
# Environment: IMAGEGATE_TARGET and IMAGEGATE_TOKEN (the gateway, a client's token),
# SNIPPETS_CLIENT (that client's id), SNIPPETS_FAILING_TARGET (the refusing gateway),
# SNIPPETS_WORK (scratch directory outside the repository), and per language:
# go      nothing: the module is served at the version the README names from a
#         GOPROXY file layout made here from client_stubs/go (as if it were tagged);
# ts      SNIPPETS_TS_TARBALL, the `npm pack` tarball (copied into each project);
# java    the artifact in the local Maven repository (`mvn install` ran);
# python  SNIPPETS_PYTHON, a virtual environment with the packed Python stubs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
lang=${1:?usage: readme-snippets.sh go|ts|java|python}
: "${IMAGEGATE_TARGET:?}" "${IMAGEGATE_TOKEN:?}" "${SNIPPETS_CLIENT:?}"
: "${SNIPPETS_FAILING_TARGET:?}" "${SNIPPETS_WORK:?}"
export IMAGEGATE_TARGET IMAGEGATE_TOKEN
SETUP_TIMEOUT=600  # installs may download (cold caches)
RUN_TIMEOUT=300
# The Go module's version as the README's `go get` names it; all packages share it.
GO_MODULE=github.com/imagegate/imagegate/client_stubs/go
GO_VERSION=v0.1.0

case $lang in
  go) package_readme=client_stubs/go/README.md ;;
  ts) package_readme=client_stubs/typescript/README.md ;;
  java) package_readme=client_stubs/java/README.md ;;
  python) package_readme= ;;  # the Python stubs' snippets live in the docs
  *) echo "unknown language $lang" >&2; exit 2 ;;
esac
work="$SNIPPETS_WORK/$lang"
rm -rf "$work"
mkdir -p "$work"
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# extract MD DIR: writes MD's blocks for $lang into DIR, prints their paths.
extract() {
  python3 - "$lang" "$1" "$2" <<'PY'
import re, sys
from pathlib import Path

lang, markdown, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
marker = re.compile(r"<!-- snippet ([a-z]+): (\S+) -->")
safe = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
lines = markdown.read_text().splitlines()
seen = set()
i = 0
while i < len(lines):
    found = marker.fullmatch(lines[i].rstrip())  # unindented: an indented one is an example
    i += 1
    if not found or found.group(1) != lang:
        continue
    name = found.group(2)
    where = f"{markdown}:{i}"
    if not safe.fullmatch(name) or ".." in name.split("/"):
        sys.exit(f"{where}: snippet path {name!r} must be relative, without '..'")
    if name in seen:
        sys.exit(f"{where}: a second snippet named {name}")
    if i >= len(lines) or not lines[i].startswith("```"):
        sys.exit(f"{where}: the marker of {name} is not followed by a fenced block")
    fence = lines[i][: len(lines[i]) - len(lines[i].lstrip("`"))]
    end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), None)
    if end is None:
        sys.exit(f"{where}: the block of {name} never closes")
    target = out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines[i + 1 : end]) + "\n")
    seen.add(name)
    print(name)
    i = end + 1
PY
}

# The programs a project runs: its run-<name>.sh files.
programs_of() { find "$1" -maxdepth 1 -name 'run-*.sh' | sed 's|.*/run-||; s|\.sh$||' | sort; }

# Go: this checkout's module, served as $GO_MODULE@$GO_VERSION from a GOPROXY file
# layout, so the README's `go get ...@v0.1.0` runs as written. Modules go to a
# module cache of this run (another copy of v0.1.0 may sit in the shared one); the
# shared cache's downloads serve every other module, then the usual proxy.
if [ "$lang" = go ]; then
  proxy="$work/.goproxy"
  python3 - "$proxy" "$GO_MODULE" "$GO_VERSION" <<'PY'
import json, subprocess, sys, zipfile
from pathlib import Path

proxy, module, version = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
files = subprocess.run(
    ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "client_stubs/go"],
    check=True, capture_output=True, text=True,
).stdout.split("\0")
at = proxy / module / "@v"
at.mkdir(parents=True)
with zipfile.ZipFile(at / f"{version}.zip", "w", zipfile.ZIP_DEFLATED) as packed:
    for name in sorted(f for f in files if f and Path(f).is_file()):
        packed.write(name, f"{module}@{version}/" + name.removeprefix("client_stubs/go/"))
(at / f"{version}.mod").write_bytes(Path("client_stubs/go/go.mod").read_bytes())
(at / f"{version}.info").write_text(json.dumps({"Version": version, "Time": "2026-01-01T00:00:00Z"}))
(at / "list").write_text(version + "\n")
PY
  export GOPROXY="file://$proxy,file://$(go env GOMODCACHE)/cache/download,$(go env GOPROXY)"
  export GONOSUMDB=github.com/imagegate/imagegate  # not published: no checksum database entry
  # -trimpath: the build cache then keys the dependencies' packages by module
  # version, not by this run's module cache path, so later runs reuse them.
  export GOMODCACHE="$work/.gomodcache" GOFLAGS="${GOFLAGS:-} -modcacherw -trimpath"
fi
if [ "$lang" = ts ]; then
  # The README's npm commands as written; these only spare registry round trips
  # for what the npm cache already holds, and the notices.
  export npm_config_prefer_offline=true npm_config_audit=false npm_config_fund=false \
    npm_config_update_notifier=false
fi
if [ "$lang" = python ]; then
  export PATH="${SNIPPETS_PYTHON:?}/bin:$PATH"
fi

# prepare DIR: what the README tells the reader to have in the project beforehand.
prepare() {
  case $lang in
    ts) cp "${SNIPPETS_TS_TARBALL:?}" "$1/" ;;
    # Batch mode and no colours: only Maven's own output changes.
    java) mkdir -p "$1/.mvn" && echo "-B -Dstyle.color=never" >"$1/.mvn/maven.config" ;;
  esac
}

# run_program DIR NAME TARGET OUT: runs run-NAME.sh in DIR against TARGET; its exit
# code. OUT gets stdout and stderr as a terminal shows them: without colour codes
# (Debian's Maven 3.8 writes them even in batch mode).
run_program() {
  local rc=0
  (cd "$1" && IMAGEGATE_TARGET=$3 timeout "$RUN_TIMEOUT" bash -e "run-$2.sh") >"$4.raw" 2>&1 || rc=$?
  sed 's/\x1b\[[0-9;]*m//g' "$4.raw" >"$4"
  return "$rc"
}

show() { echo "  output (last 40 lines, 300 characters each):"; tail -n 40 "$1" | cut -c1-300 | sed 's/^/    /'; }

check_program() {  # DIR NAME LABEL
  local dir=$1 name=$2 label="$3 $2" out="$1/.out-$2" rc=0 since=$SECONDS
  case $name in
    fox)
      rm -f "$dir/fox.png"
      run_program "$dir" fox "$IMAGEGATE_TARGET" "$out" || rc=$?
      if [ "$rc" -ne 0 ]; then fail "$label: exit code $rc"; show "$out"; return; fi
      grep -Eq '^saved fox\.png \([0-9]+ bytes\)$' "$out" || { fail "$label: no 'saved fox.png (N bytes)'"; show "$out"; return; }
      [ "$(head -c 8 "$dir/fox.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] \
        || { fail "$label: fox.png is not a PNG"; return; }
      echo "ok   $label: $(grep -E '^saved' "$out") ($((SECONDS - since))s)"
      # The same program, refused by the upstream: the README's error handling.
      rm -f "$dir/fox.png"
      rc=0
      run_program "$dir" fox "$SNIPPETS_FAILING_TARGET" "$out" || rc=$?
      if [ "$rc" -eq 0 ] || [ -e "$dir/fox.png" ]; then
        fail "$label, upstream refusing: exit code $rc, fox.png $([ -e "$dir/fox.png" ] && echo saved || echo absent)"
        show "$out"; return
      fi
      if ! grep -Eq 'INVALID_ARGUMENT|InvalidArgument' "$out" || ! grep -q invalid_value "$out"; then
        fail "$label, upstream refusing: the output names no INVALID_ARGUMENT and invalid_value"
        show "$out"; return
      fi
      echo "ok   $label, upstream refusing: exit code $rc, $(grep -Eo 'INVALID_ARGUMENT|InvalidArgument' "$out" | head -n 1) and invalid_value printed"
      ;;
    quota)
      run_program "$dir" quota "$IMAGEGATE_TARGET" "$out" || rc=$?
      if [ "$rc" -ne 0 ]; then fail "$label: exit code $rc"; show "$out"; return; fi
      local line
      line=$(grep -E "^client $SNIPPETS_CLIENT: \\\$[0-9]+\\.[0-9]{6} spent today \\(UTC\\)$" "$out" || true)
      if [ -z "$line" ]; then fail "$label: no 'client $SNIPPETS_CLIENT: \$D.DDDDDD spent today (UTC)'"; show "$out"; return; fi
      if [[ $line =~ \$0\.000000 ]]; then fail "$label: nothing spent today after the examples' images: $line"; return; fi
      echo "ok   $label: $line ($((SECONDS - since))s)"
      ;;
    stored)
      rm -f "$dir/stored.png"
      run_program "$dir" stored "$IMAGEGATE_TARGET" "$out" || rc=$?
      if [ "$rc" -ne 0 ]; then fail "$label: exit code $rc"; show "$out"; return; fi
      grep -Eq "^saved stored\.png \([0-9]+ bytes\) from a link to [0-9]{4}-[0-9]{2}-[0-9]{2}/[0-9]{4}/$SNIPPETS_CLIENT/[0-9a-f]{32}\.png\$" "$out" \
        || { fail "$label: no 'saved stored.png (N bytes) from a link to <object>'"; show "$out"; return; }
      [ "$(head -c 8 "$dir/stored.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] \
        || { fail "$label: stored.png is not a PNG"; return; }
      echo "ok   $label: $(grep -E '^saved' "$out") ($((SECONDS - since))s)"
      ;;
    *) fail "$label: no expectation for a program named $name (see the top of $0)" ;;
  esac
}

# Each Markdown file that shows this language, the package README first.
mapfile -t markdowns < <(git ls-files --cached --others --exclude-standard -- '*.md' | sort)
ordered=()
if [ -n "$package_readme" ]; then ordered+=("$package_readme"); fi
for md in "${markdowns[@]}"; do
  if [ "$md" != "$package_readme" ]; then ordered+=("$md"); fi
done

base=  # the package README's snippets as extracted (before any build)
projects=0
for md in "${ordered[@]}"; do
  dir="$work/$(echo "$md" | tr '/' '_')"
  mkdir -p "$dir.snippets"
  shown=$(extract "$md" "$dir.snippets")
  if [ -z "$shown" ]; then
    rm -rf "$dir.snippets"
    if [ "$md" = "$package_readme" ]; then fail "$md shows no $lang snippet"; fi
    continue
  fi
  projects=$((projects + 1))
  if [ "$md" = "$package_readme" ] || [ -z "$base" ]; then
    cp -r "$dir.snippets" "$dir"
    programs=$(programs_of "$dir")
    if [ "$md" = "$package_readme" ]; then base="$dir.snippets"; fi
  else
    # Another page shows some of the package README's programs: same files, same names.
    cp -r "$base" "$dir" && cp -r "$dir.snippets/." "$dir/"
    programs=$(programs_of "$base" | while read -r p; do
      grep -Eiq "(^|/)$p(/|\.|$)" <<<"$shown" && echo "$p"; true; done)
    [ -n "$programs" ] || { fail "$md tags $lang files of no known program: $shown"; continue; }
  fi
  echo "--- $md: $(echo "$shown" | wc -l) $lang snippets; programs: $(echo $programs)"
  prepare "$dir"
  if [ -f "$dir/setup.sh" ]; then
    setup_started=$SECONDS
    (cd "$dir" && timeout "$SETUP_TIMEOUT" bash -e setup.sh) >"$dir/.out-setup" 2>&1 \
      || { fail "$md: setup.sh"; show "$dir/.out-setup"; continue; }
    echo "ok   $md: setup.sh ($((SECONDS - setup_started))s)"
  fi
  for program in $programs; do check_program "$dir" "$program" "$md:"; done
done
if [ -n "$package_readme" ]; then
  for required in fox quota; do
    [ -n "$base" ] && [ -f "$base/run-$required.sh" ] || fail "$package_readme shows no run-$required.sh"
  done
elif [ "$projects" -eq 0 ]; then
  fail "no Markdown file shows a $lang snippet"
fi
echo "$lang snippets: $projects project(s), $failures failure(s)"
[ "$failures" -eq 0 ]
