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
# Extra arguments for `make run`, e.g. make run ARGS="--port 0".
ARGS ?=
# Simulated nodes `make run` starts, as kind starts a node, so that pods run;
# NODES=0 for none (ARGS="--nodes N" overrides it too).
NODES ?= 3

.PHONY: all build kubectl-pin run bench-compare e2e-upstream test deps vet unit conformance operator conformance-reference reference-peer bench bench-scale clean

all: build

## build: compile bin/kubesim.
build:
	$(GO) build -o $(BIN) ./cmd/kubesim

## kubectl-pin: build kubectl of the pinned Kubernetes version into bin/kubectl-pin.
kubectl-pin:
	v=$(KUBE_VERSION); $(GO) build -o $(KUBECTL_PIN) -ldflags "-X k8s.io/component-base/version.gitVersion=$$v \
	  -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$$(echo $$v | cut -d. -f2) \
	  -X k8s.io/component-base/version.gitTreeState=clean" k8s.io/kubernetes/cmd/kubectl

## run: run a cluster with $(NODES) simulated nodes on https://127.0.0.1:6443; kubeconfig in ./kubesim.kubeconfig.
run: build
	$(BIN) up --nodes $(NODES) $(ARGS)

## deps: check what the tests need beyond Go: stock kubectl.
deps:
	@command -v $(KUBECTL) >/dev/null || { echo "kubectl not found: the conformance suite runs the stock kubectl binary (set KUBECTL=/path/to/kubectl)"; exit 1; }

## test: vet, unit tests, the conformance suite against `kubesim up`, the example operator's suite.
test: deps build kubectl-pin vet unit conformance operator

vet:
	$(GO) vet ./...
	cd testdata/operator && $(GO) vet ./...

## unit: package tests; the storage contract also under the race detector.
unit:
	$(GO) test -race -count=1 ./apiserver/storage/...
	$(GO) test -count=1 ./apiserver/... ./internal/... ./cmd/... ./sim/... ./kubeletsim/...

## conformance: the ginkgo suite against a `kubesim up` it starts.
conformance: build kubectl-pin deps
	KUBESIM_BIN=$(abspath $(BIN)) KUBECTL=$(KUBECTL) KUBECTL_PIN=$(abspath $(KUBECTL_PIN)) $(GO) test ./conformance/ -count=1 -timeout 30m -args -ginkgo.no-color

## operator: the example operator's suite (testdata/operator, its own module) on sim.Start, then
## unchanged as an envtest suite (USE_EXISTING_CLUSTER=true) against a running `kubesim up`.
operator: build
	cd testdata/operator && $(GO) test -count=1 ./... -args -ginkgo.no-color
	KUBESIM_BIN=$(abspath $(BIN)) hack/operator-envtest.sh

## reference-peer: build the genuine kube-apiserver and etcd of the pin (cached outside the repo).
reference-peer:
	hack/reference-build.sh

## conformance-reference: the same suite against a fresh genuine kube-apiserver + etcd.
## The API specs run against the bare peer (as kubesim's run without its controllers), then the
## control-plane specs against a fresh peer with the genuine controller manager and scheduler.
REFERENCE_ENV = KUBESIM_TARGET=reference KUBECONFIG=$${REFERENCE_DIR:-$$HOME/.cache/kubesim-reference}/kubeconfig KUBECTL=$(KUBECTL) KUBECTL_PIN=$(abspath $(KUBECTL_PIN))
conformance-reference: reference-peer kubectl-pin deps
	hack/reference-peer.sh start
	$(REFERENCE_ENV) $(GO) test ./conformance/ -count=1 -timeout 30m -args -ginkgo.no-color -ginkgo.skip='control plane'; \
	  rc=$$?; hack/reference-peer.sh stop; [ $$rc -eq 0 ] || exit $$rc
	hack/reference-peer.sh start
	cp=$${REFERENCE_DIR:-$$HOME/.cache/kubesim-reference}/conformance-control-plane; \
	  SA_KEY=$${REFERENCE_DIR:-$$HOME/.cache/kubesim-reference}/run/pki/sa.key hack/control-plane.sh start $${REFERENCE_DIR:-$$HOME/.cache/kubesim-reference}/kubeconfig $$cp; \
	  KUBESIM_CONTROL_PLANE=1 $(REFERENCE_ENV) $(GO) test ./conformance/ -count=1 -timeout 30m -args -ginkgo.no-color -ginkgo.focus='control plane'; \
	  rc=$$?; hack/control-plane.sh stop $$cp; hack/reference-peer.sh stop; exit $$rc

## e2e-upstream: the upstream [Conformance] tests that need no containers (conformance/upstream/tests.txt)
## against kubesim and the reference peer, with the genuine controller manager and scheduler; writes CONFORMANCE.md.
e2e-upstream: build kubectl-pin
	hack/reference-build.sh e2e
	hack/e2e-upstream.sh kubesim; hack/e2e-upstream.sh reference; \
	  $(GO) run ./hack/e2e-report -out CONFORMANCE.md

## bench-compare: the side-by-side benchmarks (the same run as bench).
bench-compare: bench

## bench: throughput and start-up benchmarks, written to BENCHMARKS.md.
bench: build reference-peer
	KUBESIM_BIN=$(abspath $(BIN)) $(GO) run ./hack/bench -out BENCHMARKS.md

## bench-scale: 5,000 simulated nodes and 150,000 pods in one process (slow: not part of make test).
bench-scale:
	$(GO) run ./hack/bench-scale $(BENCH_SCALE_ARGS)

clean:
	rm -rf bin
