"""The evidence scripts behind docs/ (benchmarks, edge and neuron reports, the paper diagnostics,
the reliability catalogue), as modules with ``main(argv)``; ``tools/<name>.py`` runs each."""
