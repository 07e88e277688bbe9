#!/usr/bin/env bash
# control-plane.sh runs the genuine kube-controller-manager and kube-scheduler
# of the pin (built by hack/reference-build.sh) against any cluster: the
# reference peer, or kubesim until its own in-process control plane lands.
#
#   hack/control-plane.sh start KUBECONFIG RUNDIR
#   hack/control-plane.sh stop RUNDIR
#
# The controllers use the kubeconfig's credentials (no per-controller service
# account tokens), the service-account signing key SA_KEY (the API server's,
# so that legacy token Secrets authenticate; default: a generated key) and
# the cluster's CA as the root CA they publish. Logs are RUNDIR/kube-controller-manager.log and
# RUNDIR/kube-scheduler.log. They serve /healthz on KCM_PORT and SCHED_PORT
# when set (default: no serving port). Node IPAM allocates /24 podCIDRs from
# CLUSTER_CIDR (default 10.128.0.0/10, kubesim's for more than 256 nodes: the
# real-node specs run 1,002 nodes).
set -euo pipefail
REFERENCE_DIR="${REFERENCE_DIR:-$HOME/.cache/kubesim-reference}"
BIN="$REFERENCE_DIR/bin"

# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

start() {
  local kubeconfig="$1" run="$2"
  for b in kube-controller-manager kube-scheduler; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: run make reference-peer first" >&2; exit 1; }
  done
  mkdir -p "$run"
  stop "$run"
  # The cluster's CA, published in every namespace's kube-root-ca.crt.
  python3 - "$kubeconfig" "$run/ca.crt" <<'PY'
import base64, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))["clusters"][0]["cluster"]
if "certificate-authority-data" in c:
    open(sys.argv[2], "wb").write(base64.b64decode(c["certificate-authority-data"]))
else:
    open(sys.argv[2], "wb").write(open(c["certificate-authority"], "rb").read())
PY
  if [ -n "${SA_KEY:-}" ]; then
    cp "$SA_KEY" "$run/sa.key"
  else
    [ -f "$run/sa.key" ] || openssl genrsa -out "$run/sa.key" 2048 2>/dev/null
  fi
  "$BIN/kube-controller-manager" --kubeconfig "$kubeconfig" \
    --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
    --secure-port "${KCM_PORT:-0}" --bind-address 127.0.0.1 --leader-elect=false --controllers='*' --use-service-account-credentials=false \
    --service-account-private-key-file "$run/sa.key" --root-ca-file "$run/ca.crt" \
    --allocate-node-cidrs=true --cluster-cidr="${CLUSTER_CIDR:-10.128.0.0/10}" --service-cluster-ip-range=10.96.0.0/16 \
    --kube-api-qps=${KUBE_API_QPS:-200} --kube-api-burst=${KUBE_API_BURST:-400} \
    >"$run/kube-controller-manager.log" 2>&1 &
  echo $! > "$run/kube-controller-manager.pid"
  "$BIN/kube-scheduler" --kubeconfig "$kubeconfig" \
    --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
    --secure-port "${SCHED_PORT:-0}" --bind-address 127.0.0.1 --leader-elect=false \
    --kube-api-qps=${KUBE_API_QPS:-200} --kube-api-burst=${KUBE_API_BURST:-400} \
    >"$run/kube-scheduler.log" 2>&1 &
  echo $! > "$run/kube-scheduler.pid"
  echo "kube-controller-manager and kube-scheduler started against $kubeconfig (logs in $run)"
}

stop() {
  local run="$1"
  wait_gone "$run/kube-scheduler.pid"
  wait_gone "$run/kube-controller-manager.pid"
}

case "${1:-}" in
  start) [ $# -eq 3 ] || { echo "usage: $0 start KUBECONFIG RUNDIR" >&2; exit 2; }; start "$2" "$3" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop RUNDIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 start KUBECONFIG RUNDIR | stop RUNDIR" >&2; exit 2 ;;
esac
