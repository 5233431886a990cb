"""Benchmarks, run on demand (never part of the test suite): each prints its figures and ratios."""
