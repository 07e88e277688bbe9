package main

import (
	_ "github.com/google/btree"
	_ "github.com/gorilla/mux"
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
	_ "k8s.io/apiserver/pkg/endpoints/handlers"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/kubernetes/pkg/api/legacyscheme"
	_ "k8s.io/kubernetes/pkg/controlplane"
	_ "k8s.io/kubernetes/pkg/registry/core/pod"
)

func main() {}
