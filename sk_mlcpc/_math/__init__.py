"""Layer 1, the mathematics.

Bounds, their blockwise evaluation, and the alpha-validity computations.

Imports nothing from the rest of the package; only torch, numpy and scipy.
"""
