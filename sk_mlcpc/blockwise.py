"""Public path of :mod:`sk_mlcpc._math.blockwise` (the code lives in its layer)."""

from sk_mlcpc._math.blockwise import *  # noqa: F403
from sk_mlcpc._math.blockwise import __all__, __doc__  # noqa: F401
