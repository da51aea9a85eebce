#!/bin/bash
# k8s-local.sh start|stop — etcd (Debian etcd-server) + kube-apiserver/controller-manager/scheduler
# (built from Debian's kubernetes 1.20.2 source) on 127.0.0.1, one fake Ready node, and a bounded
# fake kubelet loop (fake-kubelet.sh beside it). Nothing listens beyond loopback.
#
# Copied from ../shared/k8s/k8s-local.sh (docs/deploy.md, "Kubernetes tests"), so the repository
# carries what `make k8s-test` runs; only the three binaries come from outside (K8S_BIN).
set -euo pipefail
BIN=${K8S_BIN:?dir with kube-apiserver, kube-controller-manager, kube-scheduler}
D=${K8S_RUN:-${TMPDIR:-/tmp}/k8s-run}; PORT=${APISERVER_PORT:-16443}; EP=${ETCD_PORT:-12379}
KUBECTL=${KUBECTL:-kubectl}; FAKE_SECS=${FAKE_KUBELET_SECONDS:-3600}
HERE=$(cd "$(dirname "$0")" && pwd)
stop() { for n in fake-kubelet sched kcm kube-apiserver etcd; do
    [ -f "$D/$n.pid" ] && kill "$(cat "$D/$n.pid")" 2>/dev/null || true; rm -f "$D/$n.pid"; done; }
if [ "${1:-start}" = stop ]; then stop; exit 0; fi
mkdir -p "$D/pki" "$D/logs"; rm -rf "$D/etcd-data"; cd "$D/pki"
if [ ! -f tokens.csv ]; then
  openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.crt -days 7 \
    -subj /CN=kube-apiserver -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
  echo "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n'),admin,admin,system:masters" > tokens.csv
fi
TOKEN=$(cut -d, -f1 tokens.csv)
cat > "$D/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:$PORT", certificate-authority: "$D/pki/apiserver.crt"}}]
users: [{name: admin, user: {token: "$TOKEN"}}]
contexts: [{name: local, context: {cluster: local, user: admin}}]
current-context: local
KC
etcd --name t --data-dir "$D/etcd-data" --listen-client-urls "http://127.0.0.1:$EP" \
  --advertise-client-urls "http://127.0.0.1:$EP" --listen-peer-urls "http://127.0.0.1:$((EP+1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((EP+1))" --initial-cluster "t=http://127.0.0.1:$((EP+1))" \
  --listen-metrics-urls "http://127.0.0.1:$((EP+2))" >"$D/logs/etcd.log" 2>&1 & echo $! >"$D/etcd.pid"
"$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$EP" --bind-address 127.0.0.1 \
  --advertise-address 127.0.0.1 --secure-port "$PORT" --tls-cert-file "$D/pki/apiserver.crt" \
  --tls-private-key-file "$D/pki/apiserver.key" --token-auth-file "$D/pki/tokens.csv" \
  --authorization-mode RBAC --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$D/pki/sa.pub" --service-account-signing-key-file "$D/pki/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true \
  >"$D/logs/kube-apiserver.log" 2>&1 & echo $! >"$D/kube-apiserver.pid"
export KUBECONFIG="$D/kubeconfig"
for i in $(seq 60); do $KUBECTL get --raw /readyz >/dev/null 2>&1 && break; sleep 1
  [ "$i" = 60 ] && { tail -20 "$D/logs/kube-apiserver.log"; stop; exit 1; }; done
"$BIN/kube-controller-manager" --kubeconfig "$D/kubeconfig" --leader-elect=false --port=0 --secure-port=0 \
  --service-account-private-key-file "$D/pki/sa.key" --root-ca-file "$D/pki/apiserver.crt" \
  --controllers='*,-nodelifecycle' >"$D/logs/kcm.log" 2>&1 & echo $! >"$D/kcm.pid"
"$BIN/kube-scheduler" --kubeconfig "$D/kubeconfig" --leader-elect=false --port=0 --secure-port=0 \
  >"$D/logs/sched.log" 2>&1 & echo $! >"$D/sched.pid"
$KUBECTL apply -f - >/dev/null <<'NODE'
apiVersion: v1
kind: Node
metadata: {name: fake-node-1, labels: {kubernetes.io/hostname: fake-node-1, kubernetes.io/os: linux}}
status:
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  conditions: [{type: Ready, status: "True", reason: FakeKubelet}]
NODE
$KUBECTL taint node fake-node-1 node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
KUBECTL=$KUBECTL "$HERE/fake-kubelet.sh" "$FAKE_SECS" >"$D/logs/fake-kubelet.log" 2>&1 & echo $! >"$D/fake-kubelet.pid"
for i in $(seq 30); do $KUBECTL -n default get sa default >/dev/null 2>&1 && break; sleep 1; done
echo "ready: export KUBECONFIG=$D/kubeconfig"
