"""An interrupted fit (Ctrl-C) says so: KeyboardInterrupt again, with a resumable checkpoint.

skorch's ``partial_fit`` catches every ``KeyboardInterrupt`` (its early stopping raises
one to stop), so an interrupted fit used to return a partly trained model silently and
mark its checkpoint finished, so that fitting again never completed the training.
"""

import json

import numpy as np
import pytest
from skorch.callbacks import Callback, EarlyStopping

from sk_mlcpc import ContrastiveEncoder, MutualInformationEstimator
from sk_mlcpc.datasets import make_correlated_gaussians

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


class CtrlC(Callback):
    """Raise KeyboardInterrupt at the end of epoch ``at_epoch`` (1-based), as Ctrl-C would."""

    def __init__(self, at_epoch: int):
        self.at_epoch = at_epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.at_epoch:
            raise KeyboardInterrupt


class CtrlCInBatch(Callback):
    """Raise KeyboardInterrupt in the middle of epoch ``at_epoch``'s training pass."""

    def __init__(self, at_epoch: int):
        self.at_epoch = at_epoch

    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == self.at_epoch and len(net.history[-1]["batches"]) == 3:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def gaussians():
    X, Y, _ = make_correlated_gaussians(600, 2, mi=1.0, random_state=0)
    return X, Y


def _mi(**params):
    defaults = dict(hidden_layer_sizes=(8,), max_epochs=4, batch_size=64, random_state=0)
    return MutualInformationEstimator(**{**defaults, **params})


def _encoder(**params):
    defaults = dict(
        n_components=2, hidden_layer_sizes=(8,), projection_dim=4, max_epochs=4, batch_size=64,
        random_state=0,
    )  # fmt: skip
    return ContrastiveEncoder(**{**defaults, **params})


def _data(make, gaussians):
    X, Y = gaussians
    return (X, Y) if make is _mi else (X,)


def _same_model(a, b, X):
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    assert a.history_[:, "train_loss"] == b.history_[:, "train_loss"]


@pytest.mark.parametrize("make", [_mi, _encoder], ids=["mi", "encoder"])
@pytest.mark.parametrize("callback", [CtrlC, CtrlCInBatch], ids=["epoch end", "mid-epoch"])
def test_an_interrupted_fit_raises_keyboard_interrupt(gaussians, make, callback):
    estimator = make(callbacks=[callback(2)])
    with pytest.raises(KeyboardInterrupt, match=r"fit was interrupted during epoch 2 of 4; pass "):
        estimator.fit(*_data(make, gaussians))
    assert not hasattr(estimator, "net_")


@pytest.mark.parametrize("make", [_mi, _encoder], ids=["mi", "encoder"])
@pytest.mark.parametrize("callback", [CtrlC, CtrlCInBatch], ids=["epoch end", "mid-epoch"])
def test_an_interrupted_checkpoint_stays_resumable(gaussians, tmp_path, make, callback):
    data = _data(make, gaussians)
    uninterrupted = make(early_stopping=False).fit(*data)
    directory = tmp_path / "checkpoints"
    with pytest.raises(KeyboardInterrupt, match="fit again with the same parameters and data"):
        make(early_stopping=False, checkpoint_dir=directory, callbacks=[callback(3)]).fit(*data)
    state = json.loads((directory / "sk_mlcpc_fit.json").read_text())
    assert state["completed"] is False
    # Fitting again finishes the training, to the uninterrupted result.
    resumed = make(early_stopping=False, checkpoint_dir=directory).fit(*data)
    assert len(resumed.history_) == 4
    _same_model(uninterrupted, resumed, data[0])
    assert json.loads((directory / "sk_mlcpc_fit.json").read_text())["completed"] is True


def test_an_interrupted_resume_stays_resumable(gaussians, tmp_path):
    X, Y = gaussians
    uninterrupted = _mi(max_epochs=5, early_stopping=False).fit(X, Y)
    directory = tmp_path / "checkpoints"
    for at_epoch in (2, 4):  # interrupted, resumed, interrupted again
        with pytest.raises(KeyboardInterrupt, match=f"during epoch {at_epoch} of"):
            _mi(
                max_epochs=5, early_stopping=False, checkpoint_dir=directory,
                callbacks=[CtrlC(at_epoch)],
            ).fit(X, Y)  # fmt: skip
    resumed = _mi(max_epochs=5, early_stopping=False, checkpoint_dir=directory).fit(X, Y)
    _same_model(uninterrupted, resumed, X)


def test_an_interrupted_warm_start_raises(gaussians):
    X, Y = gaussians
    # The callback fires in the first epoch of the continued fit (the net keeps it).
    estimator = _mi(max_epochs=2, warm_start=True, callbacks=[CtrlC(3)]).fit(X, Y)
    with pytest.raises(KeyboardInterrupt, match="warm_start=True continues them"):
        estimator.fit(X, Y)


def test_early_stopping_is_not_an_interruption(gaussians, tmp_path):
    X, Y = gaussians
    # A threshold no improvement can meet: early stopping ends the fit after 2 epochs.
    estimator = _mi(max_epochs=20, n_iter_no_change=2, tol=100.0, checkpoint_dir=tmp_path)
    estimator.fit(X, Y)
    assert estimator.n_epochs_ < 20
    assert json.loads((tmp_path / "sk_mlcpc_fit.json").read_text())["completed"] is True
    # skorch's own EarlyStopping among the user's callbacks stops without raising too.
    stopping = EarlyStopping(
        monitor="valid_loss", patience=1, threshold=100.0, threshold_mode="abs"
    )
    estimator = _mi(max_epochs=20, early_stopping=False, callbacks=[stopping]).fit(X, Y)
    assert len(estimator.history_) < 20
