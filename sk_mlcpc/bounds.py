"""Public path of :mod:`sk_mlcpc._math.bounds` (the code lives in its layer)."""

from sk_mlcpc._math.bounds import *  # noqa: F403
from sk_mlcpc._math.bounds import __all__, __doc__  # noqa: F401
