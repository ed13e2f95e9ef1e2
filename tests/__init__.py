"""The test suite; a regular package so that `tests.support` cannot be shadowed by another
distribution's `tests` package on sys.path (pyproject puts the repository root first)."""
