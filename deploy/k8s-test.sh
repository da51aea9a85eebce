#!/usr/bin/env bash
# `make k8s-test`: the charts on a real Kubernetes API server (1.20.2: kube-apiserver,
# controller-manager and scheduler with etcd on loopback, deploy/k8s/k8s-local.sh; no kubelet and
# no container runtime: deploy/k8s/fake-kubelet.sh marks scheduled pods Running, and test and Job
# pods Succeeded). It checks:
#
#   1. `helm template | kubectl apply --dry-run=server` of every ci/*.yaml of every chart;
#   2. values the server or values.schema.json must refuse are refused, and nothing is installed;
#   3. `helm install --wait` of the umbrella chart with ci/observability.yaml: the hook Jobs
#      (create-topics, then migrate) complete, every pod is Running, the PDBs (policy/v1beta1 on
#      1.20) and HPA (autoscaling/v2beta2), NetworkPolicies, ServiceMonitors, the ScaledObject,
#      the PrometheusRule and the dashboard ConfigMap exist (CRDs from deploy/k8s/crds.yaml);
#   4. `helm test` Succeeded;
#   5. `helm upgrade --wait` with a changed pod template: the hooks run in weight order and the
#      migration completes before the new ReplicaSet is created;
#   6. `helm rollback --wait` to revision 1 restores the old pod template; `helm uninstall`.
#
# The three server binaries: K8S_BIN, else the ones deploy/k8s/build-server.sh builds into the
# tools cache (kubernetes-1.20.2-reflect2) from Debian's source. The archive in ../shared/k8s
# holds the same version, but its API server crashes on any custom resource (see
# build-server.sh), so it is not used unless K8S_BIN names it; the test then stops at a probe and
# says so. docs/deploy.md, "Kubernetes tests", has the details. Also needed: etcd (Debian's
# etcd-server) and openssl; helm and kubectl come from deploy/helm-tools.sh.
#
# Usage: deploy/k8s-test.sh [--available]
#   --available  exit 0 when everything needed is here, else say what is missing and exit 1
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source deploy/lib.sh
source deploy/helm-tools.sh

K8S_VERSION=1.20.2
K8S_BUILT=$FITNESS_TOOLS_DIR/kubernetes-$K8S_VERSION-reflect2
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

has_binaries() { local b; for b in "${BINARIES[@]}"; do [[ -x $1/$b ]] || return 1; done; }

# Why the test cannot run here, or nothing.
missing() {
    if [[ -n ${K8S_BIN:-} ]]; then
        has_binaries "$K8S_BIN" || { echo "K8S_BIN=$K8S_BIN lacks ${BINARIES[*]}"; return; }
    elif ! has_binaries "$K8S_BUILT"; then
        echo "no Kubernetes $K8S_VERSION server binaries: build them with deploy/k8s/build-server.sh (about 20 minutes) or set K8S_BIN to a folder with ${BINARIES[*]} (docs/deploy.md, \"Kubernetes tests\")"
        return
    fi
    command -v etcd >/dev/null || { echo "etcd is missing (apt-get install etcd-server)"; return; }
    command -v openssl >/dev/null || { echo "openssl is missing (apt-get install openssl)"; return; }
}

if [[ ${1:-} == --available ]]; then
    why=$(missing)
    [[ -z $why ]] && exit 0
    echo "$why"
    exit 1
elif [[ $# -gt 0 ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    [[ $1 == -h || $1 == --help ]] && exit 0
    exit 2
fi
why=$(missing)
[[ -z $why ]] || die "$why"

START=$SECONDS
K8S_BIN=${K8S_BIN:-$K8S_BUILT}
export K8S_BIN
ensure_helm

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fitness-k8s-test.XXXXXX")
export K8S_RUN=$WORK/k8s KUBECTL FAKE_KUBELET_SECONDS=1200
export HELM_CACHE_HOME=$WORK/helm-home/cache HELM_CONFIG_HOME=$WORK/helm-home/config HELM_DATA_HOME=$WORK/helm-home/data
APISERVER_PORT=$(free_port)
# etcd takes three ports: client, peer (+1) and metrics (+2).
for _ in $(seq 1 50); do
    ETCD_PORT=$((20000 + RANDOM % 20000))
    port_open "$ETCD_PORT" || port_open $((ETCD_PORT + 1)) || port_open $((ETCD_PORT + 2)) || break
done
export APISERVER_PORT ETCD_PORT
PASSED=0 FAILED=0 FAILURES=()

cleanup() {
    local status=$?
    trap '' INT TERM PIPE
    set +e
    [[ -n ${WATCH_PIDS:-} ]] && kill $WATCH_PIDS 2>/dev/null
    deploy/k8s/k8s-local.sh stop >/dev/null 2>&1
    if [[ $status -ne 0 ]]; then echo "k8s-test logs kept in $WORK (server logs in $K8S_RUN/logs)" >&2; else rm -rf "$WORK"; fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$1"; }
not_ok() { # name, log
    FAILED=$((FAILED + 1)); FAILURES+=("$1"); printf '  FAIL  %s\n' "$1"
    [[ -n ${2:-} ]] && sed 's/^/        /' "$2" | tail -n 30
}
check() { local name=$1 log=$WORK/check.log; shift; if "$@" >"$log" 2>&1; then ok "$name"; else not_ok "$name" "$log"; fi; }
# expect_refused NAME PATTERN CMD...: CMD fails with PATTERN (grep -E) in its output.
expect_refused() {
    local name=$1 pattern=$2 log=$WORK/check.log; shift 2
    if "$@" >"$log" 2>&1; then
        echo "expected a refusal, but it succeeded" >>"$log"; not_ok "$name" "$log"
    elif grep -Eq -- "$pattern" "$log"; then ok "$name"
    else echo "refused, but without /$pattern/" >>"$log"; not_ok "$name" "$log"; fi
}

say "starting Kubernetes $K8S_VERSION on 127.0.0.1:$APISERVER_PORT (etcd on $ETCD_PORT)"
deploy/k8s/k8s-local.sh start >"$WORK/start.log" 2>&1 || { cat "$WORK/start.log"; die "the control plane did not start"; }
export KUBECONFIG=$K8S_RUN/kubeconfig
k() { "$KUBECTL" "$@"; }
SERVER_VERSION=$(k version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')
echo "server $SERVER_VERSION, kubectl $KUBECTL_VERSION, helm $HELM_VERSION"

k apply -f deploy/k8s/crds.yaml >/dev/null
k wait --for condition=established --timeout 60s crd --all >/dev/null
# A 1.20 API server built with Go >= 1.18 and its vendored reflect2 1.0.1 dies on the first custom
# resource (deploy/k8s/build-server.sh); find out before the charts do.
if ! k apply --dry-run=server -f - >"$WORK/probe.log" 2>&1 <<'PROBE'
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: probe, namespace: default}
spec: {selector: {matchLabels: {app: probe}}, endpoints: [{port: http}]}
PROBE
then
    cat "$WORK/probe.log"
    grep -m1 -A3 'fatal error' "$K8S_RUN/logs/kube-apiserver.log" || true
    die "the API server in $K8S_BIN crashed on a custom resource (a ServiceMonitor): it was built with Go >= 1.18 and Kubernetes 1.20's vendored modern-go/reflect2 1.0.1. Build fixed binaries with deploy/k8s/build-server.sh (about 20 minutes), then run again"
fi
k create namespace fitness >/dev/null
cp -R helm "$WORK/helm"
CHARTS=$WORK/helm
"$HELM" dependency build "$CHARTS/fitness" >/dev/null

# The API versions the server serves, so the charts' Capabilities checks see what it has.
API_VERSIONS=()
while read -r v; do API_VERSIONS+=(--api-versions "$v"); done < <(k api-versions)

echo "every ci/ values file, rendered for $SERVER_VERSION, accepted by the server (kubectl apply --dry-run=server)"
dry_run() { # chart values
    "$HELM" template "dry-$1" "$CHARTS/$1" -n fitness -f "$2" --kube-version "$SERVER_VERSION" "${API_VERSIONS[@]}" \
        | k apply --dry-run=server -n fitness -f -
}
for chart in ingest-api processor fitness; do
    for values in "$CHARTS/$chart"/ci/*.yaml; do
        check "$chart $(basename "$values")" dry_run "$chart" "$values"
    done
done

echo "values that must be refused"
install() { "$HELM" install "$@" -n fitness --wait --timeout 3m; }
# A refused install is rolled back (--atomic), as an operator's would be.
install_atomic() { "$HELM" install "$@" -n fitness --atomic --wait --timeout 2m; }
OBS=$CHARTS/fitness/ci/observability.yaml
expect_refused "a port out of range: refused by values.schema.json" "port.*(65535|maximum)" \
    install_atomic bad-port "$CHARTS/fitness" -f "$OBS" --set ingest-api.service.port=70000
expect_refused "no Secret (no existingSecret, no opt-in): refused by the chart" "existingSecret" \
    install_atomic no-secret "$CHARTS/fitness" -f "$CHARTS/fitness/ci/minimal.yaml" --set global.fitness.secrets.existingSecret=
expect_refused "an invalid annotation name: refused by the API server" "Invalid value.*not valid|name part must consist" \
    install_atomic bad-annotation "$CHARTS/fitness" -f "$OBS" --set-string 'ingest-api.podAnnotations.bad!key=x'
expect_refused "an invalid memory quantity: refused by the API server" "quantities must match|invalid|unmarshal" \
    install_atomic bad-quantity "$CHARTS/fitness" -f "$OBS" --set-string 'processor.resources.limits.memory=lots'
check "nothing of the refused installs is left" test -z "$("$HELM" list -n fitness -a -q)"

echo "helm install --wait (ci/observability.yaml)"
watch_order() { # resource file: every ADDED of RESOURCE, with the local time, into FILE
    k get "$1" -n fitness --watch-only --output-watch-events \
        -o jsonpath='{.type} {.object.kind} {.object.metadata.name}{"\n"}' 2>/dev/null \
        | while read -r type kind name; do echo "$(date +%s.%N) $type $kind $name"; done >>"$2" &
    WATCH_PIDS="${WATCH_PIDS:-} $!"
}
watch_order jobs "$WORK/install-jobs.watch"
check "helm install fitness" install fitness "$CHARTS/fitness" -f "$OBS"
sleep 1
check "the hook Jobs ran in weight order: create-topics, then migrate" \
    bash -c "grep ' ADDED Job ' '$WORK/install-jobs.watch' | awk '{print \$4}' | sed 's/^fitness-processor-//' | paste -sd' ' | grep -qx 'create-topics migrate'"
k get pods,jobs,deploy,hpa,pdb,networkpolicy,servicemonitor,scaledobject,prometheusrule,configmap -n fitness -o wide 2>/dev/null | tee "$WORK/objects.txt" | sed 's/^/    /'
running=$(k get pods -n fitness -l app.kubernetes.io/instance=fitness --field-selector=status.phase=Running -o name | wc -l)
not_running=$(k get pods -n fitness -l app.kubernetes.io/instance=fitness -o jsonpath='{range .items[?(@.status.phase!="Running")]}{.metadata.name}{" "}{end}')
check "every Deployment pod is Running ($running)" test "$running" -ge 2 -a -z "$not_running"
for object in "networkpolicy 2" "servicemonitor 2" "scaledobject 1" "prometheusrule 1" "hpa 1" "pdb 2"; do
    set -- $object
    check "$2 $1 object(s) created" test "$(k get "$1" -n fitness -o name | wc -l)" -eq "$2"
done
check "the PDBs are policy/v1beta1 and the HPA autoscaling/v2beta2 on $SERVER_VERSION" \
    bash -c "'$HELM' get manifest fitness -n fitness | grep -q '^apiVersion: policy/v1beta1' && '$HELM' get manifest fitness -n fitness | grep -q '^apiVersion: autoscaling/v2beta2'"
k get configmap -n fitness -l grafana_dashboard=1 -o jsonpath='{.items[0].data.fitness\.json}' >"$WORK/dashboard.json" 2>&1 || true
check "the dashboard ConfigMap has the grafana_dashboard label and the dashboard" \
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["panels"]) >= 10, d' "$WORK/dashboard.json"

echo "helm test"
"$HELM" test fitness -n fitness --timeout 2m >"$WORK/helm-test.log" 2>&1 || true
sed 's/^/    /' "$WORK/helm-test.log" | grep -E "NAME|TEST SUITE|Last Started|Phase" || true
check "helm test: every test pod Succeeded" \
    bash -c "grep -c 'Phase: *Succeeded' '$WORK/helm-test.log' | grep -qx 2 && ! grep -q 'Phase: *Failed' '$WORK/helm-test.log'"

echo "helm upgrade --wait (a changed pod template)"
watch_order jobs "$WORK/upgrade-jobs.watch"
watch_order replicasets "$WORK/upgrade-rs.watch"
sleep 1
check "helm upgrade fitness" "$HELM" upgrade fitness "$CHARTS/fitness" -n fitness -f "$OBS" \
    --set-string processor.podAnnotations.k8s-test/revision=2 --wait --timeout 3m
sleep 1
cat "$WORK/upgrade-jobs.watch" "$WORK/upgrade-rs.watch" | sort -n >"$WORK/upgrade.order"
sed 's/^/    /' "$WORK/upgrade.order" | grep ADDED || true
first_line() { grep -n " ADDED $1" "$WORK/upgrade.order" | head -n 1 | cut -d: -f1; }
topics_at=$(first_line 'Job fitness-processor-create-topics$') migrate_at=$(first_line 'Job fitness-processor-migrate$')
rs_at=$(first_line 'ReplicaSet fitness-processor-[a-z0-9]*$')
check "create-topics, then migrate, then the processor's new ReplicaSet" \
    test -n "$topics_at" -a -n "$migrate_at" -a -n "$rs_at" -a "${topics_at:-0}" -lt "${migrate_at:-0}" -a "${migrate_at:-0}" -lt "${rs_at:-0}"
check "the succeeded hook Jobs were deleted (hook-delete-policy)" test -z "$(k get jobs -n fitness -o name)"
check "the processor runs the new pod template" \
    test "$(k get deploy fitness-processor -n fitness -o jsonpath='{.spec.template.metadata.annotations.k8s-test/revision}')" = 2

echo "helm rollback --wait"
check "helm rollback fitness 1" "$HELM" rollback fitness 1 -n fitness --wait --timeout 3m
check "revision 3 is the rollback to 1, deployed" \
    bash -c "'$HELM' history fitness -n fitness | awk '\$1 == 3' | grep -q 'deployed.*Rollback to 1'"
check "the old pod template is back" \
    test -z "$(k get deploy fitness-processor -n fitness -o jsonpath='{.spec.template.metadata.annotations.k8s-test/revision}')"
check "helm uninstall" "$HELM" uninstall fitness -n fitness --wait --timeout 2m
check "no Deployment is left" test -z "$(k get deploy -n fitness -o name)"

echo
((FAILED > 0)) && { printf 'failed:\n'; printf '  %s\n' "${FAILURES[@]}"; }
echo "took $((SECONDS - START))s"
echo "k8s-test: $PASSED passed, $FAILED failed"
((FAILED == 0))
