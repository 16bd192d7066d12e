"""Layer 4, the scikit-learn estimators: one fit skeleton and the four estimators built on it.

May import every lower layer (:mod:`sk_mlcpc._math`, :mod:`sk_mlcpc._nn`, :mod:`sk_mlcpc._engine`).
"""
