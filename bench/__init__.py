"""Benchmarks: each prints its figures (medians and ratios)."""
