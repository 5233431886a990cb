//go:build tools

// Package testbed pins the Kubernetes control-plane programs the sandbox builds from source.
// `python -m sandbox.binaries` runs `go build` on each main package imported below; the
// blank imports keep them (and exactly their dependency versions) in go.mod and go.sum.
package testbed

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
