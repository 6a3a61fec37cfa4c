#!/usr/bin/env bash
# CI: renders every kustomization under deploy/kubernetes and validates each rendering
# offline and strictly (unknown fields are errors) for the oldest and the newest
# Kubernetes version the manifests support, then runs the tests that read the
# renderings (probe ports and services against the gateway's settings, the drain
# arithmetic: tests/deploy/).
#
# Renderer: `kubectl kustomize` when kubectl is installed, else `kustomize` on PATH,
# else a pinned kustomize built with `go install` into the cache below (Go module
# proxy). Validator: kubernetes-validate (PyPI, its schemas bundled: no network at
# validation time), pinned by constraints.txt, in a venv of its own in the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

KUSTOMIZE_MODULE=sigs.k8s.io/kustomize/kustomize/v5
KUSTOMIZE_VERSION=v5.7.1  # builds with this machine's Go 1.26
# Oldest: lifecycle.preStop.sleep is on by default from 1.30. Newest: what
# kubernetes-validate 1.37.0 knows.
K8S_VERSIONS=(1.30 1.37)

CACHE=${IMAGEGATE_CI_CACHE:-/var/cache/imagegate-ci}
mkdir -p "$CACHE" 2>/dev/null && [ -w "$CACHE" ] || CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/imagegate-ci
mkdir -p "$CACHE"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

fail() { printf 'kubernetes.sh: FAILED: %s\n' "$*" >&2; exit 1; }

if command -v kubectl >/dev/null; then
  render() { kubectl kustomize "$1"; }
  echo "renderer: kubectl kustomize ($(kubectl version --client 2>/dev/null | grep -i kustomize || echo kubectl))"
elif command -v kustomize >/dev/null; then
  render() { kustomize build "$1"; }
  echo "renderer: kustomize $(kustomize version)"
else
  bin=$CACHE/kustomize-$KUSTOMIZE_VERSION
  if [ ! -x "$bin/kustomize" ]; then
    go=$(command -v go || echo /usr/local/go/bin/go)
    [ -x "$go" ] || fail "no kubectl, no kustomize and no Go toolchain to build kustomize with"
    echo "building $KUSTOMIZE_MODULE@$KUSTOMIZE_VERSION (go install) into $bin"
    GOBIN=$bin GOFLAGS=-mod=mod "$go" install "$KUSTOMIZE_MODULE@$KUSTOMIZE_VERSION"
  fi
  render() { "$bin/kustomize" build "$1"; }
  echo "renderer: kustomize $("$bin/kustomize" version)"
fi

validate_version=$(grep -i '^kubernetes-validate==' constraints.txt | cut -d= -f3)
[ -n "$validate_version" ] || fail "constraints.txt pins no kubernetes-validate"
venv=$CACHE/kubernetes-validate-$validate_version
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -c constraints.txt "kubernetes-validate==$validate_version"
fi
echo "validator: kubernetes-validate $("$venv/bin/kubernetes-validate" --version)"

mapfile -t kustomizations < <(find deploy/kubernetes -name kustomization.yaml -printf '%h\n' | sort)
[ "${#kustomizations[@]}" -gt 0 ] || fail "no kustomization under deploy/kubernetes"
for dir in "${kustomizations[@]}"; do
  name=$(basename "$dir")
  render "$dir" >"$out/$name.yaml" || fail "cannot render $dir"
  kinds=$(grep -c '^kind:' "$out/$name.yaml" || true)
  for version in "${K8S_VERSIONS[@]}"; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$out/$name.yaml" \
      || fail "$dir does not validate (strict) for Kubernetes $version"
  done
  echo "  $dir: $kinds resources, valid (strict) for Kubernetes ${K8S_VERSIONS[*]}"
done

IMAGEGATE_K8S_RENDERED=$out .venv/bin/python -m pytest -q tests/deploy
