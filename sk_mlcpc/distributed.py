"""Public path of :mod:`sk_mlcpc._engine.distributed` (the code lives in its layer)."""

from sk_mlcpc._engine.distributed import *  # noqa: F403
from sk_mlcpc._engine.distributed import __all__, __doc__  # noqa: F401
