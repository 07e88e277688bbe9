# kubesim. The two commands a user needs: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -buildvcs=false

BIN := bin/kubesim
KUBECTL ?= kubectl
# The kubectl of the pinned Kubernetes version, built from k8s.io/kubernetes
# (a `tool` of go.mod); the conformance suite runs its kubectl specs with both.
KUBE_VERSION = $(shell $(GO) list -m -f '{{.Version}}' k8s.io/kubernetes)
KUBECTL_PIN := bin/kubectl-pin
# helm v4, built from the module proxy (go install): the conformance suite
# installs testdata/charts with it.
HELM_VERSION := v4.3.2
HELM := bin/helm
# Extra arguments for `make run`, e.g. make run ARGS="--port 0".
ARGS ?=
# Simulated nodes `make run` starts, as kind starts a node, so that pods run;
# NODES=0 for none (ARGS="--nodes N" overrides it too).
NODES ?= 3
# Real nodes `make run` starts (the genuine kubelet and kube-proxy over
# containerd; needs root): REAL_NODES=2 make run.
REAL_NODES ?= 0
# The image tarballs real nodes import (hack/images builds them): where
# kubesim looks by default.
export KUBESIM_IMAGES ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kubesim/images
# Debian packages real nodes use; make test installs the missing ones.
REALNODE_PACKAGES := containerd runc iptables conntrack containernetworking-plugins busybox-static iproute2 util-linux gcc \
  bind9-dnsutils curl netcat-openbsd socat bash

.PHONY: all build generate kubectl-pin helm run realnode-deps images bench-compare e2e-upstream test deps vet unit fuzz fuzz-short crash-test crash-short etcd-interop shard-test conformance operator conformance-reference reference-peer bench bench-scale bench-scheduler soak clean

all: build

# The pinned version stamped into binaries built from k8s.io/kubernetes, as
# its own build does: kubectl-pin, and the kubelet and kube-proxy of real nodes.
VERSION_LDFLAGS = -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	  -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION))) \
	  -X k8s.io/component-base/version.gitTreeState=clean

## build: compile bin/kubesim.
build:
	$(GO) build -ldflags "$(VERSION_LDFLAGS)" -o $(BIN) ./cmd/kubesim

## generate: regenerate the files generated from the pinned Kubernetes (after changing its version).
generate:
	$(GO) test ./apiserver/openapi -run TestGeneratedSchema -update -count=1
	$(GO) test ./apiserver -run TestGeneratedBootstrapFields -update -count=1

## kubectl-pin: build kubectl of the pinned Kubernetes version into bin/kubectl-pin.
kubectl-pin:
	$(GO) build -o $(KUBECTL_PIN) -ldflags "$(VERSION_LDFLAGS)" k8s.io/kubernetes/cmd/kubectl

helm: $(HELM)
$(HELM):
	GOBIN=$(abspath bin) GOFLAGS= $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

## run: run a cluster with $(NODES) simulated nodes (and $(REAL_NODES) real ones) on https://127.0.0.1:6443;
## kubeconfig in ./kubesim.kubeconfig.
run: build $(if $(filter-out 0,$(REAL_NODES)),images)
	$(BIN) up --nodes $(NODES) --real-nodes $(REAL_NODES) $(ARGS)

## realnode-deps: install the Debian packages real nodes need, if missing (as root).
realnode-deps:
	@missing=$$(for p in $(REALNODE_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "real nodes need Debian packages:" $$missing "(run make as root to install them)"; exit 0; fi; \
	  echo "installing Debian packages for real nodes:" $$missing; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing || \
	    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; }; \
	fi

## images: build the real nodes' image tarballs (those the upstream [Conformance] tests run; cached) into $(KUBESIM_IMAGES).
images: realnode-deps
	$(GO) run ./hack/images -out $(KUBESIM_IMAGES)

## deps: check what the tests need beyond Go: stock kubectl.
deps:
	@command -v $(KUBECTL) >/dev/null || { echo "kubectl not found: the conformance suite runs the stock kubectl binary (set KUBECTL=/path/to/kubectl)"; exit 1; }

## test: vet, unit tests, the conformance suite against `kubesim up`, the example operator's suite.
test: deps build kubectl-pin helm vet unit crash-short conformance operator

vet:
	$(GO) vet ./...
	cd testdata/operator && $(GO) vet ./...

## unit: package tests; the storage contract also under the race detector.
unit: images
	$(GO) test -race -count=1 ./apiserver/storage/...
	$(GO) test -count=1 ./apiserver/... ./internal/... ./cmd/... ./sim/... ./kubeletsim/... ./addons/... ./realnode/... ./hack/images/...

## fuzz: the API server's fuzz targets (go test -fuzz), FUZZTIME each (default 1h); a failing input is
## written to apiserver/testdata/fuzz/<target>/ and runs from then on as a regression test in make unit.
## fuzz-short: each target briefly (2,000 inputs). Not in make test: make unit runs every target on its
## seeds and apiserver/testdata/fuzz, while fuzzing builds every dependency again with coverage
## instrumentation, 9-10 minutes of a fresh machine's make test for 2,000 inputs a target.
FUZZ_TARGETS = FuzzListParameters FuzzWriteBodies FuzzWatchParameters
FUZZTIME ?= 1h
fuzz:
	for t in $(FUZZ_TARGETS); do $(GO) test ./apiserver/ -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) || exit 1; done

# A count, not a duration: go1.26's fuzzing coordinator can fail a target
# with "context deadline exceeded" and no failing input when its -fuzztime
# deadline races a busy worker (golang/go#75804, fixed in go1.27); a count
# has no deadline.
fuzz-short:
	$(MAKE) fuzz FUZZTIME=2000x

## crash-test: kill -9 kubesim at random moments under client-go writers, readers and watchers, restart it
## and check: no acknowledged write lost, no revision reused, resumed watches without gaps or duplicates,
## the history linearizable (porcupine). 200 cycles with --data-dir, 50 with --storage etcd (slow).
CRASH_CYCLES ?= 200
CRASH_ETCD_CYCLES ?= 50
crash-test: build
	$(GO) run ./hack/crashtest -kubesim $(abspath $(BIN)) -cycles $(CRASH_CYCLES)
	$(GO) run ./hack/crashtest -kubesim $(abspath $(BIN)) -storage etcd -cycles $(CRASH_ETCD_CYCLES)

## crash-short: the crash harness's short version, in make test.
crash-short: build
	$(MAKE) crash-test CRASH_CYCLES=5 CRASH_ETCD_CYCLES=3

## conformance: the ginkgo suite against a `kubesim up` it starts (real-node specs as root).
conformance: build kubectl-pin helm deps images
	KUBESIM_BIN=$(abspath $(BIN)) KUBECTL=$(KUBECTL) KUBECTL_PIN=$(abspath $(KUBECTL_PIN)) HELM=$(abspath $(HELM)) $(GO) test ./conformance/ -count=1 -timeout 30m -args -ginkgo.no-color

## operator: the example operator's suite (testdata/operator, its own module) on sim.Start, then
## unchanged as an envtest suite (USE_EXISTING_CLUSTER=true) against a running `kubesim up`.
operator: build
	cd testdata/operator && $(GO) test -count=1 ./... -args -ginkgo.no-color
	KUBESIM_BIN=$(abspath $(BIN)) hack/operator-envtest.sh

## reference-peer: build the genuine kube-apiserver and etcd of the pin (cached outside the repo).
reference-peer:
	hack/reference-build.sh

## shard-test: an API-server-only kubesim and two `kubesim node run --shard I/2` processes: 5,000 nodes
## Ready and a 10,000-pod Deployment Running (slow: minutes).
shard-test: build
	hack/shard-test.sh $(abspath $(BIN)) 5000 10000 2

## etcd-interop: kubesim --storage etcd and the genuine kube-apiserver on one etcd list the same objects.
etcd-interop: build reference-peer
	hack/etcd-interop.sh $(abspath $(BIN))

## conformance-reference: the same suite against a fresh genuine kube-apiserver + etcd.
## The API specs run against the bare peer (as kubesim's run without its controllers), then the
## control-plane specs against a fresh peer with the genuine controller manager and scheduler.
REFERENCE_ENV = KUBESIM_TARGET=reference KUBECONFIG=$${REFERENCE_DIR:-$$HOME/.cache/kubesim-reference}/kubeconfig KUBECTL=$(KUBECTL) KUBECTL_PIN=$(abspath $(KUBECTL_PIN))
conformance-reference: reference-peer build kubectl-pin deps images
	hack/reference-peer.sh start
	$(REFERENCE_ENV) $(GO) test ./conformance/ -count=1 -timeout 30m -args -ginkgo.no-color -ginkgo.skip='control plane'; \
	  rc=$$?; hack/reference-peer.sh stop; [ $$rc -eq 0 ] || exit $$rc
	hack/reference-peer.sh start
	cp=$${REFERENCE_DIR:-$$HOME/.cache/kubesim-reference}/conformance-control-plane; \
	  SA_KEY=$${REFERENCE_DIR:-$$HOME/.cache/kubesim-reference}/run/pki/sa.key hack/control-plane.sh start $${REFERENCE_DIR:-$$HOME/.cache/kubesim-reference}/kubeconfig $$cp; \
	  KUBESIM_CONTROL_PLANE=1 $(REFERENCE_ENV) $(GO) test ./conformance/ -count=1 -timeout 30m -args -ginkgo.no-color -ginkgo.focus='control plane'; \
	  rc=$$?; hack/control-plane.sh stop $$cp; hack/reference-peer.sh stop; exit $$rc

## e2e-upstream: the upstream [Conformance] tests (conformance/upstream/tests.txt) against kubesim and the
## reference peer, with the genuine controller manager and scheduler: those that need no containers, then
## those that do, on two real nodes (slow: hours on 2 cores); writes CONFORMANCE.md.
e2e-upstream: build kubectl-pin images
	hack/reference-build.sh e2e
	hack/e2e-upstream.sh kubesim; hack/e2e-upstream.sh reference; \
	  hack/e2e-upstream.sh kubesim real; hack/e2e-upstream.sh reference real; \
	  $(GO) run ./hack/e2e-report -out CONFORMANCE.md

## bench-compare: the side-by-side benchmarks (the same run as bench).
bench-compare: bench

## bench: throughput and start-up benchmarks, written to BENCHMARKS.md.
bench: build reference-peer
	KUBESIM_BIN=$(abspath $(BIN)) $(GO) run ./hack/bench -out BENCHMARKS.md

## bench-scale: 5,000 simulated nodes and 150,000 pods in one process (slow: not part of make test).
# scheduler_perf's workloads through upstream scheduler_perf (its
# integration kube-apiserver and the reference's etcd) and through
# kubesim experiments, side by side, into BENCHMARKS.md. Slow: about 30 min.
bench-scheduler: reference-peer
	$(GO) test -tags schedulerperf -c -o $(dir $(KUBESIM_IMAGES))scheduler-perf.test ./hack/bench-scheduler/upstream
	$(GO) run ./hack/bench-scheduler -upstream-bin $(dir $(KUBESIM_IMAGES))scheduler-perf.test -out BENCHMARKS.md $(BENCH_SCHEDULER_ARGS)

bench-scale:
	$(GO) run ./hack/bench-scale $(BENCH_SCALE_ARGS)

## soak: hostile and heavy clients against kubesim up --nodes 100 for SOAK_DURATION (default 10m): a
## well-behaved client's latency, a 1,000-pod Deployment, RSS, acknowledged writes, 5xx and panics
## (slow: not part of make test). SOAK_ARGS: flags of hack/soak; by default kubesim's concurrency is
## sized to a 2-core machine (kube-apiserver's defaults, 400+200 seats, let the storm take every CPU).
SOAK_DURATION ?= 10m
SOAK_ARGS ?= -kubesim-args "--max-requests-inflight 20 --max-mutating-requests-inflight 10"
soak: build
	$(GO) run ./hack/soak -kubesim $(abspath $(BIN)) -duration $(SOAK_DURATION) $(SOAK_ARGS)

clean:
	rm -rf bin
