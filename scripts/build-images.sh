#!/usr/bin/env bash
# Build the three images of tango-operator (the Dockerfile's watcher, worker and flower
# targets) and, with PUSH=1, push them; `make images` runs this.
#
#   REGISTRY   where the chart will pull from, e.g. registry.example.org/tango (no default:
#              images without a registry can only run where they were built)
#   TAG        the image tag; default: the version in pyproject.toml (the chart's appVersion)
#   ENGINE     docker or podman; default: whichever is on PATH (docker first)
#   PUSH       1 pushes each image after building it
#
# The names are the chart's defaults (tango-operator-watcher, -worker, -flower), so
#   helm install ... --set global.imageRegistry=$REGISTRY
# picks them up (with TAG other than the appVersion, also --set {watcher,worker,flower}.image.tag).
set -euo pipefail

cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
tag=${TAG:-$version}
registry=${REGISTRY:-}
engine=${ENGINE:-}
if [[ -z "$engine" ]]; then
  for candidate in docker podman; do
    if command -v "$candidate" >/dev/null 2>&1; then
      engine=$candidate
      break
    fi
  done
fi
if [[ -z "$engine" ]] || ! command -v "$engine" >/dev/null 2>&1; then
  echo "images: no container engine found: install docker or podman, or set ENGINE=<path>" >&2
  exit 2
fi
if [[ "${PUSH:-0}" == 1 && -z "$registry" ]]; then
  echo "images: PUSH=1 needs REGISTRY=<registry/path> to push to" >&2
  exit 2
fi

prefix=${registry:+${registry%/}/}
for target in watcher worker flower; do
  image="${prefix}tango-operator-${target}:${tag}"
  echo "images: building ${image} (target ${target}) with ${engine}"
  "$engine" build --target "$target" --tag "$image" .
  if [[ "${PUSH:-0}" == 1 ]]; then
    echo "images: pushing ${image}"
    "$engine" push "$image"
  fi
done
echo "images: done; install with: helm install tango-operator helm/tango-operator" \
  "--namespace tango-operator --create-namespace${registry:+ --set global.imageRegistry=${registry%/}}" \
  "${TAG:+--set watcher.image.tag=$tag --set worker.image.tag=$tag --set flower.image.tag=$tag}"
