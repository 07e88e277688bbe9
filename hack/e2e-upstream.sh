#!/usr/bin/env bash
# e2e-upstream.sh runs the upstream [Conformance] tests marked "run" in
# conformance/upstream/tests.txt against a target and keeps the JUnit report
# in conformance/upstream/results/<target>.xml.
#
#   hack/e2e-upstream.sh kubesim     # kubesim up
#   hack/e2e-upstream.sh reference   # the genuine kube-apiserver + etcd (the baseline)
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
target="${1:?usage: $0 kubesim|reference}"
REFERENCE_DIR="${REFERENCE_DIR:-$HOME/.cache/kubesim-reference}"
BIN="$REFERENCE_DIR/bin"
run="$REFERENCE_DIR/e2e-$target"
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
    bin/kubesim up --port 0 --kubeconfig "$kc" --compaction-interval 10s >"$run/kubesim.log" 2>&1 &
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
"$run/e2e-nodes" --kubeconfig "$kc" --nodes 2 >"$run/e2e-nodes.log" 2>&1 &
pids+=($!)

# The focus: every "run" test, each name as an exact regular expression
# (ginkgo matches it within the full text of the spec).
focus="$(python3 - <<'PY'
import re
import os
names = [l.rstrip("\n").split("\t", 2)[2] for l in open(os.environ.get("E2E_TESTS", "conformance/upstream/tests.txt"))
         if l.startswith("run\t")]
print("(" + "|".join(re.escape(n) for n in names) + ")")
PY
)"
rc=0
"$run/ginkgo" --procs "${E2E_PROCS:-4}" --focus "$focus" --no-color --timeout "${E2E_TIMEOUT:-60m}" \
  "$BIN/e2e.test" -- --kubeconfig "$kc" --provider skeleton --report-dir "$run/report" \
  --kubectl-path "${KUBECTL_PIN:-$PWD/bin/kubectl-pin}" >"$run/e2e.log" 2>&1 || rc=$?
result="conformance/upstream/results/${E2E_RESULT:-$target}.xml"
cp "$run/report/junit_01.xml" "$result"
tail -5 "$run/e2e.log"
echo "e2e against $target: exit $rc; report $result, log $run/e2e.log"
