"""Layer 2, the torch building blocks: critics, encoders, views and device helpers.

May import the mathematics layer (:mod:`sk_mlcpc._math`).
"""
