"""How many threads a fit, a transform or a score computes with (the ``n_threads`` parameter).

torch's intra-op pool and the BLAS libraries that numpy and scipy load start one thread per
core and spin while they wait for each other. On a machine whose cores are busy elsewhere
(``GridSearchCV(n_jobs=2)``, a shared box, a CI runner) a descheduled thread stalls every
parallel step of the others: the default fit (10,000 pairs, 20 columns a side, 4 epochs)
took 124-140 s with torch's two threads against 3.8-10.8 s with one, on two cores beside two
busy processes (issue 27; ``benchmarks/threads.py`` measures it). On an idle machine the
default networks gain little from a second thread: about a quarter of a default fit's
profiled time is in operations large enough for torch to split (matrix products, and
element-wise operations over more than 32,768 values), so that two threads save at most
about an eighth of it, if those parts halve (not measured: no idle machine was at hand).
One thread is therefore the default; ``n_threads`` raises it.

:func:`thread_limit` applies a count to torch (:func:`torch.set_num_threads`) and to the
native pools :mod:`threadpoolctl` finds (BLAS and OpenMP), and restores what was there
before on the way out, exceptions included. The setting is process-global: nested and
concurrent limits are counted, and the value found by the first is restored by the last,
so that a limit never outlives the calls that made it.

Where the limit applies: ``ContrastiveEstimator._fit`` runs every fit inside
:func:`thread_limit`, and the public methods that compute on a fitted model (``transform``,
``score``, ``evaluate``, ``predict_proba`` ...) are wrapped with :func:`limits_threads` when
their class is created.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from numbers import Integral
from typing import Any, TypeVar

import torch
from threadpoolctl import ThreadpoolController

__all__ = ["available_cores", "limits_threads", "resolve_n_threads", "thread_limit"]

_Method = TypeVar("_Method", bound=Callable[..., Any])

# torch's thread count and the native pools are process state, shared by every Python
# thread: one lock and one count of the limits in force keep their save and restore paired.
_lock = threading.Lock()
_active = 0
_torch_before = 0
_native_before: Any = None  # the threadpoolctl limiter of the outermost limit


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity where the system reports one."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resolve_n_threads(n_threads: int | None) -> int:
    """The thread count an ``n_threads`` parameter asks for.

    ``None`` is 1 (see the module docstring for the measurement); a positive int is used
    as given; a negative one counts back from the available cores as joblib's ``n_jobs``
    does (-1 all of them, -2 all but one), and is at least 1.
    """
    if n_threads is None:
        return 1
    if n_threads < 0:
        return max(1, available_cores() + 1 + n_threads)
    if n_threads == 0:
        raise ValueError("n_threads=0 names no thread; use None, a positive or a negative int.")
    return int(n_threads)


@contextmanager
def thread_limit(n_threads: int) -> Iterator[None]:
    """Compute with ``n_threads`` threads inside the block, then restore the counts found.

    The native pools are limited by the outermost block only (a scan of the loaded libraries
    costs about a millisecond); a nested block with another count changes torch's, which is
    restored when the block ends.
    """
    global _active, _torch_before, _native_before
    with _lock:
        previous = torch.get_num_threads()
        if _active == 0:
            _torch_before = previous
            _native_before = ThreadpoolController().limit(limits=n_threads)
        _active += 1
        if previous != n_threads:
            torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                torch.set_num_threads(_torch_before)
                _native_before.restore_original_limits()
                _native_before = None
            elif torch.get_num_threads() != previous:
                torch.set_num_threads(previous)


def limits_threads(method: _Method) -> _Method:
    """Run an estimator's public ``method`` under ``thread_limit(self.n_threads)``.

    The wrapper is one more frame between the user's call and the method: a warning
    raised inside that should point at the user's call counts it in its ``stacklevel``.
    ``fit`` is not wrapped for that reason; it applies the limit inside ``_fit``.
    """

    @functools.wraps(method)
    def limited(self, *args, **kwargs):
        # An invalid value is left for the method's own parameter validation to name.
        n_threads = getattr(self, "n_threads", None)
        if n_threads is not None and (not isinstance(n_threads, Integral) or n_threads == 0):
            return method(self, *args, **kwargs)
        with thread_limit(resolve_n_threads(n_threads)):
            return method(self, *args, **kwargs)

    return limited  # type: ignore[return-value]
