"""Benchmarks: scripts that report figures (never run by the test suite)."""
