//go:build tools

// Package tools pins the third-party assessment tools the benchmark compares with (bench/popeye.py
// builds them from the Go module proxy into the cache; nothing here is linked into the bot).
package tools

import _ "github.com/derailed/popeye"
