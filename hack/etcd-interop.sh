#!/usr/bin/env bash
# etcd-interop.sh checks that kubesim --storage etcd stores as kube-apiserver
# stores: one etcd, a kubesim on it and the genuine kube-apiserver of the pin
# on it (hack/reference-peer.sh with ETCD_SERVERS); objects written through
# either are listed the same through both.
#
#   hack/etcd-interop.sh BIN/kubesim
set -euo pipefail
KUBESIM="${1:-bin/kubesim}"
REFERENCE_DIR="${REFERENCE_DIR:-$HOME/.cache/kubesim-reference}"
WORK="$(mktemp -d)"
ETCD_PORT=23890
ETCD_PEER_PORT=23891
cleanup() {
  [ -n "${KS_PID:-}" ] && kill "$KS_PID" 2>/dev/null || true
  REFERENCE_DIR="$REFERENCE_DIR" "$(dirname "$0")/reference-peer.sh" stop || true
  [ -n "${ETCD_PID:-}" ] && kill "$ETCD_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$REFERENCE_DIR/bin/etcd" --data-dir "$WORK/etcd" --name interop \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "interop=http://127.0.0.1:$ETCD_PEER_PORT" >"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!

"$KUBESIM" up --storage etcd --etcd-servers "http://127.0.0.1:$ETCD_PORT" --nodes 2 --port 0 \
  --kubeconfig "$WORK/kubesim.kubeconfig" --huge-pages=false >"$WORK/kubesim.log" 2>&1 &
KS_PID=$!
for _ in $(seq 1 600); do [ -f "$WORK/kubesim.kubeconfig" ] && break; sleep 0.1; done
[ -f "$WORK/kubesim.kubeconfig" ] || { tail -20 "$WORK/kubesim.log" >&2; exit 1; }
KS="$WORK/kubesim.kubeconfig"

ETCD_SERVERS="http://127.0.0.1:$ETCD_PORT" REFERENCE_DIR="$REFERENCE_DIR" "$(dirname "$0")/reference-peer.sh" start >/dev/null
REF="$REFERENCE_DIR/kubeconfig"

# Through kubesim: a Deployment (its pods run on kubesim's simulated nodes),
# a Service, a CRD and a custom resource; through kube-apiserver: a ConfigMap,
# a Secret and another custom resource.
kubectl --kubeconfig "$KS" create deployment web --image=nginx --replicas=3 >/dev/null
kubectl --kubeconfig "$KS" create service clusterip web --tcp=80 >/dev/null
kubectl --kubeconfig "$KS" apply -f - >/dev/null <<'CRD'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
CRD
kubectl --kubeconfig "$REF" create configmap from-reference --from-literal=k=v >/dev/null
kubectl --kubeconfig "$REF" create secret generic from-reference --from-literal=k=v >/dev/null
for _ in $(seq 1 100); do
  kubectl --kubeconfig "$KS" get widgets >/dev/null 2>&1 && kubectl --kubeconfig "$REF" get widgets >/dev/null 2>&1 && break
  sleep 0.2
done
printf 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: from-kubesim}\nspec: {size: 1}\n' | kubectl --kubeconfig "$KS" apply -f - >/dev/null
printf 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: from-reference}\nspec: {size: 2}\n' | kubectl --kubeconfig "$REF" apply -f - >/dev/null
for _ in $(seq 1 100); do
  [ "$(kubectl --kubeconfig "$KS" get pods -l app=web -o jsonpath='{.items[*].status.phase}')" = "Running Running Running" ] && break
  sleep 0.2
done

fail=0
# Objects nobody writes any more: resourceVersions too. Others (pods, nodes:
# status and heartbeats) may change between the two listings: names and uids.
compare() {
  local what="$1" fields="$2"
  a="$(kubectl --kubeconfig "$KS" get "$what" -A -o jsonpath="{range .items[*]}$fields{\"\\n\"}{end}" | sort)"
  b="$(kubectl --kubeconfig "$REF" get "$what" -A -o jsonpath="{range .items[*]}$fields{\"\\n\"}{end}" | sort)"
  if [ "$a" = "$b" ] && [ -n "$a" ]; then
    echo "same through both: $what ($(echo "$a" | wc -l) objects)"
  else
    echo "DIFFERENT: $what"; diff <(echo "$a") <(echo "$b") | head -10; fail=1
  fi
}
for what in configmaps secrets widgets customresourcedefinitions services namespaces clusterroles; do
  compare "$what" '{.metadata.namespace}/{.metadata.name} {.metadata.uid} {.metadata.resourceVersion}'
done
for what in deployments replicasets pods nodes; do
  compare "$what" '{.metadata.namespace}/{.metadata.name} {.metadata.uid}'
done
[ "$(kubectl --kubeconfig "$REF" get widget from-kubesim -o jsonpath='{.spec.size}')" = 1 ] || { echo "kube-apiserver does not read kubesim's custom resource"; fail=1; }
[ "$(kubectl --kubeconfig "$KS" get secret from-reference -o jsonpath='{.data.k}')" = "dg==" ] || { echo "kubesim does not read kube-apiserver's Secret"; fail=1; }
exit $fail
