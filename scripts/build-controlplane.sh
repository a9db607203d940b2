#!/usr/bin/env bash
# Builds the real Kubernetes control plane the tests run against into .tools/controlplane:
# kube-apiserver, kube-controller-manager and kube-scheduler from k8s.io/kubernetes, and etcd
# from its server library, as pinned by devstack/controlplane/go.mod + go.sum (the module proxy
# serves the sources; -mod=readonly, so nothing but go.sum decides what is built).
# Idempotent: a stamp holding the hash of the module files and build flags skips the build when
# nothing changed; otherwise Go's own module and build caches make a rebuild seconds, and the
# first (cold) build takes minutes — progress is printed while it runs.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
module="$root/devstack/controlplane"
out="$root/.tools/controlplane"
stamp="$out/.stamp"
commands=(./etcd k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
          k8s.io/kubernetes/cmd/kube-scheduler)
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler)

go_binary="$(command -v go || true)"
if [ -z "$go_binary" ] && [ -x /usr/local/go/bin/go ]; then go_binary=/usr/local/go/bin/go; fi
if [ -z "$go_binary" ]; then
  echo "controlplane: Go (>= 1.23) is required to build kube-apiserver and etcd, and none is on PATH." >&2
  echo "              install Go from https://go.dev/dl or your distribution (Debian: apt-get install golang)" >&2
  exit 1
fi

version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$module/go.mod")"
minor="$(echo "$version" | cut -d. -f2)"
# what kube-apiserver --version and GET /version report (a plain `go build` says v0.0.0-master)
ldflags="-s -w"
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $package.gitVersion=$version -X $package.gitMajor=1 -X $package.gitMinor=$minor"
  ldflags="$ldflags -X $package.gitTreeState=clean"
done

wanted="$(cat "$module/go.mod" "$module/go.sum" "$module/etcd/main.go" | sha256sum | cut -d' ' -f1)"
wanted="$wanted $("$go_binary" env GOVERSION) $ldflags"
complete=true
for binary in "${binaries[@]}"; do [ -x "$out/$binary" ] || complete=false; done
if $complete && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "controlplane: Kubernetes $version (kube-apiserver, kube-controller-manager, kube-scheduler, etcd) present in $out"
  exit 0
fi

mkdir -p "$out"
rm -f "$stamp"
command=("$go_binary" build -v -mod=readonly -trimpath -ldflags "$ldflags" -o "$out/" "${commands[@]}")
echo "controlplane: building Kubernetes $version and etcd into $out"
echo "              (the first build downloads ~700 MB of modules and compiles for minutes; later ones reuse Go's caches)"
echo "              $ cd devstack/controlplane && $(printf '%q ' "${command[@]}")"
log="$out/build.log"
started=$SECONDS
set +e
(cd "$module" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false "${command[@]}") 2>&1 | tee "$log" | awk -v started="$started" '
  /^(go: downloading|#|[a-z]+\.go:|.*: )/ && !/^[a-zA-Z0-9._\/-]+$/ { print "              " $0; fflush(); next }
  { compiled++; if (compiled % 250 == 0) { printf "              ... %d packages compiled\n", compiled; fflush() } }'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "controlplane: the build failed (exit $status). The command, in devstack/controlplane:" >&2
  echo "  $(printf '%q ' "${command[@]}")" >&2
  echo "its last lines (all of them in $log):" >&2
  tail -n 40 "$log" >&2
  exit "$status"
fi
echo "$wanted" > "$stamp"
echo "controlplane: built Kubernetes $version in $((SECONDS - started)) s"
