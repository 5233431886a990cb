//go:build tools

// Package tools keeps helm's main package in this module's graph so `go mod tidy` records every
// module it needs in go.sum; sandbox/binaries.py builds it with -mod=readonly.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
