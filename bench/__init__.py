"""Benchmarks: one module per capability with a speed target (run with ``make bench``)."""
