"""Parameter descriptions shared, word for word, by the estimators' docstrings.

An estimator's docstring holds a line ``.. shared-parameter:: name`` where the entry of
``name`` goes; :func:`shared_parameter_docs` (a class decorator) writes the entry there, at
the line's indentation, when the module is imported. Sphinx, numpydoc, ``help()`` and the
doctests all see the finished docstring.
"""

from __future__ import annotations

import re

__all__ = ["shared_parameter_docs"]

_MARKER = re.compile(r"^(?P<indent>[ ]*)\.\. shared-parameter:: (?P<name>\w+)$", re.MULTILINE)

PARAMETERS: dict[str, str] = {
    "device": """\
device : str or torch.device, default="auto"
    ``"auto"`` trains on CUDA when available, else on the CPU.""",
    "n_threads": """\
n_threads : int or None, default=None
    CPU threads that ``fit``, ``transform``, ``score`` and the other methods compute
    with: torch's intra-op threads (:func:`torch.set_num_threads`) and the BLAS and
    OpenMP pools that :mod:`threadpoolctl` finds. The count applies only inside those
    calls; the one found before is restored afterwards, also when the call raises.
    ``None`` means 1: the default networks gain little from more threads, and threads
    that wait for each other on cores that other processes keep busy
    (``GridSearchCV(n_jobs=2)``, a shared machine, a CI runner) made a fit 13-35 times
    slower. A negative value counts back from the cores this process may use, as
    ``n_jobs`` does (-1: all of them). Raise it for large networks or batches on an
    otherwise idle machine.""",
    "n_iter_no_change": """\
n_iter_no_change : int, default=10
    Patience of early stopping, in epochs.""",
    "weight_decay": """\
weight_decay : float, default=0.0
    Adam weight decay.""",
    "compile": """\
compile : bool, default=False
    Compile the network with :func:`torch.compile` (through skorch): slower to start,
    faster per step on large models and GPUs.""",
    "precision": """\
precision : {"fp32", "bf16", "fp16"}, default="fp32"
    Run the network under autocast in bfloat16 or float16 (mainly for GPUs). The
    bounds accumulate the half-precision scores in float32 and in log space; float16
    training uses a gradient scaler.""",
    "on_divergence": """\
on_divergence : {"raise", "restore"}, default="raise"
    What to do when a step produces a non-finite gradient or loss (or a loss above
    1e4): raise a :class:`~sk_mlcpc.DivergenceError` naming the first bad batch, with
    advice, or restore the weights and optimiser state of the last good epoch, drop
    the steps from the bad one on, halve the learning rate and go on (at most 5
    times). Each event is recorded in ``history_`` as ``divergence``. The checks are
    read after every step on the CPU, every 64 steps on an accelerator.""",
    "activation": """\
activation : str, default="relu"
    Hidden activation, one of :data:`sk_mlcpc.encoders.ACTIVATIONS`.""",
    "verbose": """\
verbose : int, default=0
    0 is silent; 1 prints skorch's per-epoch table; 2 also shows a progress bar.""",
    "learning_rate": """\
learning_rate : float, default=1e-3
    Adam learning rate.""",
    "callbacks": """\
callbacks : list of skorch callbacks or (name, callback) tuples, or None, default=None
    Extra skorch callbacks; copies are used, the originals are not modified.""",
    "checkpoint_dir": """\
checkpoint_dir : str, path-like or None, default=None
    Directory where the network, optimiser, criterion and history are saved after
    every epoch. If it already holds an unfinished checkpoint of the same fit (same
    parameters and data), ``fit`` resumes from it and runs only the remaining
    epochs: with the same ``random_state`` the result is the one an uninterrupted
    fit gives (early stopping included: its patience count and best weights carry
    over). A finished checkpoint is loaded without training.""",
    "early_stopping": """\
early_stopping : bool, default=True
    Stop when the held-out bound has not improved by ``tol`` for
    ``n_iter_no_change`` epochs, and restore the best weights.""",
    "tol": """\
tol : float, default=1e-3
    Minimum improvement of the held-out bound (nats) that resets the patience.""",
    # Fitted attributes, in the Attributes sections.
    "mi_std_": """\
mi_std_ : float
    Standard error of ``mi_``: the grouped jackknife over the held-out rows (20 groups
    per batch), i.e. how much ``mi_`` would move with another draw of held-out rows
    for this model. NaN with fewer than 4 held-out rows.""",
    "mi_ci_": """\
mi_ci_ : tuple of float
    95% interval for the *bound's* expectation at this batch size for the fitted
    model, ``mi_ +- t * mi_std_``. It is not an interval for the MI: a valid bound
    lies below the MI, by a gap that the interval does not measure.""",
    "mi_cap_": """\
mi_cap_ : float
    Largest value the bound can take at ``eval_batch_size_`` and ``eval_alpha_``.""",
    "saturated_": """\
saturated_ : bool
    True when the estimate is limited by the evaluation batch rather than by the
    model: it rose by more than 0.05 nats from batches of half the size to
    ``eval_batch_size_`` (``saturation_gain_``), or lies within 0.1 nats of
    ``mi_cap_``. More rows per evaluation batch would then raise it, and the MI is
    likely well above it. A :class:`~sk_mlcpc.SaturationWarning` says so at ``fit``.""",
    "saturation_gain_": """\
saturation_gain_ : float
    ``mi_`` minus the same bound on half-size batches of the same rows, nats.""",
    "n_epochs_": """\
n_epochs_ : int
    Epochs run.""",
    "device_": """\
device_ : torch.device
    Training device.""",
    "feature_names_in_": """\
feature_names_in_ : ndarray of str
    Column names of ``X``, when it had string column names.""",
}


def shared_parameter_docs(cls: type) -> type:
    """Fill the ``.. shared-parameter::`` lines of ``cls.__doc__`` from :data:`PARAMETERS`.

    An unknown name raises ``KeyError`` at import, so a typo cannot ship.
    """

    def entry(match: re.Match) -> str:
        indent = match["indent"]
        lines = PARAMETERS[match["name"]].rstrip("\n").split("\n")
        return "\n".join(indent + line if line else line for line in lines)

    cls.__doc__ = _MARKER.sub(entry, cls.__doc__)
    return cls
