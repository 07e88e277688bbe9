#!/usr/bin/env bash
# reference-peer.sh runs the genuine kube-apiserver of the pin beside kubesim:
# etcd and kube-apiserver on loopback ports, with a generated CA and serving
# certificate, a token file, RBAC and service-account keys.
#
#   hack/reference-peer.sh start   # writes $REFERENCE_DIR/kubeconfig once /readyz answers
#   hack/reference-peer.sh stop    # stops both by PID and waits for them to exit
#
# ETCD_SERVERS=URL runs only kube-apiserver, on that etcd (one kubesim
# --storage etcd uses too); ETCD_FSYNC=1 runs etcd with fsync, as etcd runs
# by default (otherwise --unsafe-no-fsync, for speed in the suites).
# kube-apiserver records audit events under testdata/audit/policy.yaml in
# $REFERENCE_DIR/run/audit.log, as the conformance suite's kubesim does.
# KUBE_APISERVER_FLAGS adds flags to kube-apiserver's (split on spaces); a
# second peer on the first's etcd, for a spec that needs other flags:
#   REFERENCE_DIR=/tmp/ref2 REFERENCE_BIN=~/.cache/kubesim-reference/bin \
#   ETCD_SERVERS=http://127.0.0.1:23790 API_PORT=26444 \
#   KUBE_APISERVER_FLAGS="--max-requests-inflight 20" hack/reference-peer.sh start
# Binaries come from $REFERENCE_DIR/bin (kube-apiserver, etcd), built outside
# the repository's tracked files; they are never committed.
set -euo pipefail
REFERENCE_DIR="${REFERENCE_DIR:-$HOME/.cache/kubesim-reference}"
RUN="$REFERENCE_DIR/run"
BIN="${REFERENCE_BIN:-$REFERENCE_DIR/bin}"
ETCD_PORT="${ETCD_PORT:-23790}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-23800}"
API_PORT="${API_PORT:-26443}"
COMPACTION="${ETCD_COMPACTION_INTERVAL:-10s}"
ETCD_SERVERS="${ETCD_SERVERS:-}"
NO_FSYNC="--unsafe-no-fsync"
[ "${ETCD_FSYNC:-}" = 1 ] && NO_FSYNC=""

# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

stop() {
  wait_gone "$RUN/kube-apiserver.pid"
  wait_gone "$RUN/etcd.pid"
}

start() {
  for b in etcd kube-apiserver; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: build the reference binaries first" >&2; exit 1; }
  done
  stop
  rm -rf "$RUN" && mkdir -p "$RUN/pki" "$RUN/etcd"
  local pki="$RUN/pki"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=reference-ca" -days 365 -out "$pki/ca.crt" 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/serving.key" 2>/dev/null
  openssl req -new -key "$pki/serving.key" -subj "/CN=kube-apiserver" -out "$pki/serving.csr" 2>/dev/null
  printf "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n" > "$pki/serving.ext"
  openssl x509 -req -in "$pki/serving.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 365 -extfile "$pki/serving.ext" -out "$pki/serving.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  # The API server's client certificate for kubelets (logs, exec, ...), as
  # kubeadm's apiserver-kubelet-client.
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/kubelet-client.key" 2>/dev/null
  openssl req -new -key "$pki/kubelet-client.key" -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" -out "$pki/kubelet-client.csr" 2>/dev/null
  printf "extendedKeyUsage=clientAuth\n" > "$pki/kubelet-client.ext"
  openssl x509 -req -in "$pki/kubelet-client.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 365 -extfile "$pki/kubelet-client.ext" -out "$pki/kubelet-client.crt" 2>/dev/null
  local token; token="$(openssl rand -hex 16)"
  echo "${token},admin,admin-uid,\"system:masters\"" > "$pki/tokens.csv"

  if [ -z "$ETCD_SERVERS" ]; then
    # shellcheck disable=SC2086
    "$BIN/etcd" --data-dir "$RUN/etcd" --name reference \
      --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
      --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
      --initial-cluster "reference=http://127.0.0.1:$ETCD_PEER_PORT" $NO_FSYNC >"$RUN/etcd.log" 2>&1 &
    echo $! > "$RUN/etcd.pid"
  fi

  # shellcheck disable=SC2086
  "$BIN/kube-apiserver" --etcd-servers "${ETCD_SERVERS:-http://127.0.0.1:$ETCD_PORT}" --etcd-compaction-interval "$COMPACTION" \
    --bind-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$pki/serving.crt" --tls-private-key-file "$pki/serving.key" \
    --token-auth-file "$pki/tokens.csv" --client-ca-file "$pki/ca.crt" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$pki/kubelet-client.crt" --kubelet-client-key "$pki/kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" --service-cluster-ip-range 10.96.0.0/16 \
    --allow-privileged=true --endpoint-reconciler-type=none --kubelet-preferred-address-types InternalIP,ExternalIP,Hostname \
    --audit-policy-file "$(cd "$(dirname "$0")/.." && pwd)/testdata/audit/policy.yaml" --audit-log-path "$RUN/audit.log" ${KUBE_APISERVER_FLAGS:-} >"$RUN/kube-apiserver.log" 2>&1 &
  echo $! > "$RUN/kube-apiserver.pid"

  for _ in $(seq 1 600); do
    if curl -fsk -H "Authorization: Bearer $token" "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then
      local kc="$RUN/kubeconfig.tmp"
      cat > "$kc" <<KC
apiVersion: v1
kind: Config
clusters:
- name: reference
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$pki/ca.crt"}
users:
- name: admin
  user: {token: "$token"}
contexts:
- name: reference
  context: {cluster: reference, user: admin, namespace: default}
current-context: reference
KC
      mv "$kc" "$REFERENCE_DIR/kubeconfig"
      echo "reference kube-apiserver ready on https://127.0.0.1:$API_PORT; kubeconfig $REFERENCE_DIR/kubeconfig"
      return 0
    fi
    kill -0 "$(cat "$RUN/kube-apiserver.pid")" 2>/dev/null || { tail -20 "$RUN/kube-apiserver.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "kube-apiserver not ready within 60s" >&2
  tail -20 "$RUN/kube-apiserver.log" >&2
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
