"""Benchmarks that write docs/benchmarks.md; run with `make bench`."""
