#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kube-scheduler 1.20.2 from Debian bookworm's
# source package `kubernetes` (1.20.5+really1.20.2, the full upstream tree with vendor/) with
# Debian's Go, into OUT (default ~/.cache/fitness/tools/kubernetes-1.20.2-reflect2), for
# `make k8s-test` (K8S_BIN).
#
# One patch: vendor/github.com/modern-go/reflect2 is replaced by Debian's 1.0.2
# (golang-github-modern-go-reflect2-dev). Kubernetes 1.20 vendors 1.0.1, which reads Go's map
# iterator through a private layout that Go 1.18 changed: built with Debian's Go 1.19, the API
# server dies with SIGSEGV (runtime.mapiterinit under json-iterator) on the first custom resource
# it receives (a ServiceMonitor, a ScaledObject). ../shared/k8s's archive has that defect.
#
# Needs: a deb-src line for bookworm in the apt sources, and apt-get. About 20 minutes on 2 cores.
set -euo pipefail
OUT=${1:-${FITNESS_TOOLS_DIR:-$HOME/.cache/fitness/tools}/kubernetes-1.20.2-reflect2}
WORK=${K8S_BUILD_DIR:-$HOME/.cache/fitness/k8s-build}
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

say "installing the build tools (golang-go, dpkg-dev, reflect2 1.0.2's source)"
apt-get install -y -q --no-install-recommends golang-go dpkg-dev rsync golang-github-modern-go-reflect2-dev >/dev/null
mkdir -p "$WORK" && cd "$WORK"
if [[ ! -d k8s ]]; then
    say "downloading and unpacking Debian's kubernetes source package"
    apt-get source -q --download-only kubernetes >/dev/null \
        || { echo "apt-get source failed: add a deb-src line for bookworm to the apt sources and run apt-get update" >&2; exit 1; }
    dpkg-source -q -x kubernetes_*.dsc k8s >/dev/null
fi
cd k8s
say "replacing vendor/github.com/modern-go/reflect2 (1.0.1) with Debian's 1.0.2"
rsync -a --delete --exclude '*_test.go' /usr/share/gocode/src/github.com/modern-go/reflect2/ vendor/github.com/modern-go/reflect2/
say "building (CGO_ENABLED=0, about 20 minutes on 2 cores)"
CGO_ENABLED=0 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >"$WORK/build.log" 2>&1 \
    || { tail -n 30 "$WORK/build.log" >&2; exit 1; }
mkdir -p "$OUT.partial"
cp _output/local/bin/linux/amd64/{kube-apiserver,kube-controller-manager,kube-scheduler} "$OUT.partial/"
rm -rf "$OUT" && mv "$OUT.partial" "$OUT"
say "built into $OUT"
