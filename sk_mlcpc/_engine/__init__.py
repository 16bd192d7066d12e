"""Layer 3, the training engine.

The skorch nets, losses, callbacks, the fit runner, evaluation and persistence.

May import :mod:`sk_mlcpc._math` and :mod:`sk_mlcpc._nn`.
"""
