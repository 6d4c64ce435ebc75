"""Plain reference implementations, independent of the vectorised code, for tests and benchmarks."""
