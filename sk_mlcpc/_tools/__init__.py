"""Layer 5, the tooling: the command line and the staircase experiment.

May import every lower layer and :mod:`sk_mlcpc.datasets`.
"""
