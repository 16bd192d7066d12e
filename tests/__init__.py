"""The tests, grouped like the package's layers (see docs/architecture.rst)."""
