"""Public path of :mod:`sk_mlcpc._nn.critics` (the code lives in its layer)."""

from sk_mlcpc._nn.critics import *  # noqa: F403
from sk_mlcpc._nn.critics import __all__, __doc__  # noqa: F401
