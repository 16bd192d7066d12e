"""Public path of :mod:`sk_mlcpc._nn.encoders` (the code lives in its layer)."""

from sk_mlcpc._nn.encoders import *  # noqa: F403
from sk_mlcpc._nn.encoders import __all__, __doc__  # noqa: F401
