//go:build tools

// Package tools keeps Alertmanager's two main packages in this module's graph so `go mod tidy` records
// every module they need in go.sum; sandbox/binaries.py builds them with -mod=readonly.
package tools

import (
	_ "github.com/prometheus/alertmanager/cmd/alertmanager"
	_ "github.com/prometheus/alertmanager/cmd/amtool"
)
