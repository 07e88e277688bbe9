#!/usr/bin/env bash
# e2e-upstream.sh runs the upstream [Conformance] tests marked "run" in
# conformance/upstream/tests.txt against a target and keeps the JUnit report
# in conformance/upstream/results/<target>.xml.
#
#   hack/e2e-upstream.sh kubesim     # kubesim up
#   hack/e2e-upstream.sh reference   # the genuine kube-apiserver + etcd (the baseline)
#   hack/e2e-upstream.sh kubesim real     # the "real" lines, on two real nodes
#   hack/e2e-upstream.sh reference real   # the same, the same real nodes joined to the reference
#
# Without "real" the nodes are Node objects kept Ready by hack/e2e-nodes (no
# kubelet); with it they are real nodes (genuine kubelet, kube-proxy and
# containerd in network namespaces of their own, images from make images):
# kubesim up --real-nodes 2, or kubesim node run --real joined to the
# reference with its CA. The report is then results/<target>-real.xml.
#
# E2E_TESTS names another test list of the same format (say, the tests a
# timed-out run did not reach) and E2E_RESULT the report's name.
#
# Both targets run the genuine kube-controller-manager and kube-scheduler of
# the pin (kubesim in-process, the reference from hack/control-plane.sh) and
# Node objects kept Ready by hack/e2e-nodes, which the suite needs to start.
# Binaries come from hack/reference-build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: $0 kubesim|reference [real]}"
nodes="${2:-}"
case "$nodes" in
  "") decision=run; suffix= ;;
  real) decision=real; suffix=-real ;;
  *) echo "unknown node kind $nodes (want: real)" >&2; exit 2 ;;
esac
REFERENCE_DIR="${REFERENCE_DIR:-$HOME/.cache/kubesim-reference}"
BIN="$REFERENCE_DIR/bin"
run="$REFERENCE_DIR/e2e-$target$suffix"
rm -rf "$run" && mkdir -p "$run" conformance/upstream/results
[ -x "$BIN/e2e.test" ] || { echo "missing $BIN/e2e.test: run hack/reference-build.sh e2e" >&2; exit 1; }
go build -o "$run/e2e-nodes" ./hack/e2e-nodes
# The ginkgo CLI runs the suite in parallel processes: most of these tests
# wait on the cluster rather than work.
go build -o "$run/ginkgo" github.com/onsi/ginkgo/v2/ginkgo

pids=()
cleanup() {
  hack/control-plane.sh stop "$run/cp" || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "$target" = reference ] && hack/reference-peer.sh stop || true
}
trap cleanup EXIT

case "$target" in
  kubesim)
    kc="$run/kubeconfig"
    # The same compaction interval as the reference peer's etcd (10s).
    real=()
    [ "$decision" = real ] && real=(--real-nodes 2)
    bin/kubesim up --port 0 --kubeconfig "$kc" --compaction-interval 10s "${real[@]}" >"$run/kubesim.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do [ -s "$kc" ] && break; sleep 0.1; done
    [ -s "$kc" ] || { tail -20 "$run/kubesim.log" >&2; exit 1; } ;;
  reference)
    hack/reference-peer.sh start
    kc="$REFERENCE_DIR/kubeconfig" ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac

# kubesim runs the genuine controllers and scheduler in-process; the
# reference gets them from hack/control-plane.sh.
[ "$target" = reference ] && hack/control-plane.sh start "$kc" "$run/cp"
if [ "$decision" = run ]; then
  "$run/e2e-nodes" --kubeconfig "$kc" --nodes 2 >"$run/e2e-nodes.log" 2>&1 &
  pids+=($!)
elif [ "$target" = reference ]; then
  bin/kubesim node run --real --kubeconfig "$kc" --nodes 2 --cluster-cidr 10.128.0.0/10 \
    --ca-cert-file "$REFERENCE_DIR/run/pki/ca.crt" --ca-key-file "$REFERENCE_DIR/run/pki/ca.key" >"$run/realnodes.log" 2>&1 &
  pids+=($!)
fi
if [ "$decision" = real ]; then
  # The suite starts once both nodes are Ready (its own wait is short).
  for _ in $(seq 1 240); do
    [ "$(KUBECONFIG="$kc" "${KUBECTL_PIN:-$PWD/bin/kubectl-pin}" get nodes --no-headers 2>/dev/null | grep -cw Ready)" -ge 2 ] && break
    sleep 0.5
  done
  KUBECONFIG="$kc" "${KUBECTL_PIN:-$PWD/bin/kubectl-pin}" get nodes -o wide >"$run/nodes.txt" 2>&1 || true
fi

# The focus: every "run" test, each name as an exact regular expression
# (ginkgo matches it within the full text of the spec).
focus="$(DECISION="$decision" python3 - <<'PY'
import re
import os
names = [l.rstrip("\n").split("\t", 2)[2] for l in open(os.environ.get("E2E_TESTS", "conformance/upstream/tests.txt"))
         if l.startswith(os.environ["DECISION"] + "\t")]
print("(" + "|".join(re.escape(n) for n in names) + ")")
PY
)"
rc=0
"$run/ginkgo" --procs "${E2E_PROCS:-4}" --focus "$focus" --no-color --timeout "${E2E_TIMEOUT:-$([ "$decision" = real ] && echo 180m || echo 60m)}" \
  "$BIN/e2e.test" -- --kubeconfig "$kc" --provider skeleton --report-dir "$run/report" \
  --kubectl-path "${KUBECTL_PIN:-$PWD/bin/kubectl-pin}" >"$run/e2e.log" 2>&1 || rc=$?
result="conformance/upstream/results/${E2E_RESULT:-$target$suffix}.xml"
cp "$run/report/junit_01.xml" "$result"
tail -5 "$run/e2e.log"
echo "e2e against $target: exit $rc; report $result, log $run/e2e.log"
