"""Benchmarks of the ET rules and models (``pytest benchmarks``) and their report."""
