"""Benchmarks: synthetic workloads and the scripts that time reconciler against them (see README.md)."""
