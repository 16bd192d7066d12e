"""Public path of :mod:`sk_mlcpc._nn.critics` (the code lives in its layer)."""

from sk_mlcpc._nn.class_critic import ClassCritic
from sk_mlcpc._nn.critics import *  # noqa: F403
from sk_mlcpc._nn.critics import __all__ as _critics_all
from sk_mlcpc._nn.critics import __doc__  # noqa: F401

__all__ = ["ClassCritic", *_critics_all]
