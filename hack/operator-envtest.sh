#!/usr/bin/env bash
# operator-envtest.sh runs the example operator's suite (testdata/operator)
# as an envtest suite pointed at a running cluster: `kubesim up --nodes 3`,
# then USE_EXISTING_CLUSTER=true and KUBECONFIG, as operator authors point
# their existing envtest suites at kubesim.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${KUBESIM_BIN:-$PWD/bin/kubesim}"
dir="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$bin" up --port 0 --nodes 3 --kubeconfig "$dir/kubeconfig" >"$dir/kubesim.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  [ -s "$dir/kubeconfig" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/kubesim.log"; echo "kubesim up exited" >&2; exit 1; }
  sleep 0.1
done
[ -s "$dir/kubeconfig" ] || { cat "$dir/kubesim.log"; echo "kubesim up wrote no kubeconfig in 30s" >&2; exit 1; }
cd testdata/operator
USE_EXISTING_CLUSTER=true KUBECONFIG="$dir/kubeconfig" go test -count=1 . -args -ginkgo.no-color
