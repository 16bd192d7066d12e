"""Layer 1, the mathematics.

The bounds' registry and formulas, their dense and blockwise evaluation, and the
alpha-validity computations.

Imports nothing from the rest of the package; only torch, numpy and scipy.
"""
