"""Benchmarks: `python -m bench.NAME` prints a table with ratios against a baseline run alongside."""
