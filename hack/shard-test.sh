#!/usr/bin/env bash
# shard-test.sh: an API-server-only kubesim (`kubesim up --nodes 0`) and
# SHARDS `kubesim node run --shard I/SHARDS` processes hosting NODES
# simulated nodes between them; checks that every node is Ready and that a
# PODS-replica Deployment gets every pod Running (make shard-test).
#
#   hack/shard-test.sh BIN/kubesim [NODES [PODS [SHARDS]]]
set -euo pipefail
KUBESIM="${1:-bin/kubesim}"
NODES="${2:-5000}"
PODS="${3:-10000}"
SHARDS="${4:-2}"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
export KUBECONFIG="$WORK/kubeconfig"
start=$(date +%s)
"$KUBESIM" up --nodes 0 --cluster-cidr 10.128.0.0/10 --port 0 --kubeconfig "$KUBECONFIG" --no-node-events >"$WORK/up.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do [ -f "$KUBECONFIG" ] && break; sleep 0.1; done
for i in $(seq 0 $((SHARDS - 1))); do
  "$KUBESIM" node run --kubeconfig "$KUBECONFIG" --nodes "$NODES" --shard "$i/$SHARDS" --no-node-events >"$WORK/node-$i.log" 2>&1 &
  PIDS+=($!)
done
ready=0
for _ in $(seq 1 600); do
  ready=$(kubectl get nodes --no-headers 2>/dev/null | awk '$2=="Ready"' | wc -l)
  [ "$ready" -ge "$NODES" ] && break
  sleep 2
done
echo "nodes Ready: $ready of $NODES after $(( $(date +%s) - start )) s"
[ "$ready" -ge "$NODES" ] || exit 1
for i in $(seq 0 $((SHARDS - 1))); do
  echo "shard $i/$SHARDS hosts $(grep -ho 'Simulated nodes registered" nodes=[0-9]*' "$WORK/node-$i.log" | grep -o '[0-9]*$') nodes"
done
t0=$(date +%s)
kubectl create deployment load --image=registry.k8s.io/pause:3.10 --replicas="$PODS" >/dev/null
# The Deployment's status, not a list of every pod, while it rolls out.
for _ in $(seq 1 1800); do
  ready=$(kubectl get deployment load -o jsonpath='{.status.readyReplicas}' 2>/dev/null)
  [ "${ready:-0}" -ge "$PODS" ] && break
  sleep 2
done
running=$(kubectl get pods -l app=load --field-selector=status.phase=Running --no-headers 2>/dev/null | wc -l)
echo "pods Running: $running of $PODS after $(( $(date +%s) - t0 )) s"
echo "nodes with pods: $(kubectl get pods -l app=load -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | wc -l)"
for p in "${PIDS[@]}"; do echo "RSS of $(tr '\0' ' ' </proc/$p/cmdline | cut -c1-60): $(( $(awk '/VmRSS/{print $2}' /proc/$p/status) / 1024 )) MiB"; done
[ "$running" -ge "$PODS" ]
