"""Public path of :mod:`sk_mlcpc._nn.views` (the code lives in its layer)."""

from sk_mlcpc._nn.views import *  # noqa: F403
from sk_mlcpc._nn.views import __all__, __doc__  # noqa: F401
