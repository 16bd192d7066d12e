"""``on_divergence="restore"`` never hides a fault: restores are counted, warned, and a fit
whose every epoch was rolled back is refused (issue 27, item 4).

Before: the encoder at ``learning_rate=1e10`` rolled back every one of its 5 epochs and
returned outputs bit-identical to an untrained encoder, without a word; a fit with a
restore said nothing either; and a divergence in the validation pass advised passing
``on_divergence='restore'`` to a fit that had it on.
"""

import json
import math
import warnings
import zipfile

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from skorch.callbacks import Callback

from sk_mlcpc import ContrastiveEncoder, DivergenceError, MutualInformationEstimator
from sk_mlcpc.datasets import make_correlated_gaussians

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


class PoisonAt(Callback):
    """Set the first parameter to NaN before training batch ``batch`` (1-based) of each of
    the ``epochs`` (1-based), or before the first validation batch with ``validation``."""

    def __init__(self, epochs=(), batch: int = 1, validation: bool = False):
        self.epochs = epochs
        self.batch = batch
        self.validation = validation

    def initialize(self):
        self.seen_ = 0
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.seen_ = 0

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training:
            if self.validation:
                with torch.no_grad():
                    next(net.module_.parameters()).fill_(math.nan)
            return
        self.seen_ += 1
        if len(net.history) in self.epochs and self.seen_ == self.batch:
            with torch.no_grad():
                next(net.module_.parameters()).fill_(math.nan)


@pytest.fixture(scope="module")
def gaussians():
    X, Y, _ = make_correlated_gaussians(800, 2, mi=1.0, random_state=0)
    return X, Y


def _mi(**params):
    defaults = dict(
        hidden_layer_sizes=(8,), batch_size=64, max_epochs=3, early_stopping=False,
        random_state=0, on_divergence="restore",
    )  # fmt: skip
    return MutualInformationEstimator(**{**defaults, **params})


def _restore_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "rolled back" in str(w.message)]


def test_the_encoder_that_never_trained_is_refused():
    # The case: every epoch diverges at once and is rolled back to the start.
    X = load_digits(return_X_y=True)[0][:200]
    encoder = ContrastiveEncoder(
        learning_rate=1e10, max_epochs=5, on_divergence="restore", early_stopping=False,
        random_state=0,
    )  # fmt: skip
    with pytest.raises(DivergenceError) as caught:
        encoder.fit(X)
    message = str(caught.value)
    assert "diverged in every epoch of the fit: 5 restore(s) in 5 epoch(s)" in message
    assert "untrained" in message and "Lower learning_rate" in message
    # The option is on: advising it would send the user in a circle.
    assert "pass on_divergence='restore'" not in message


def test_a_fit_rolled_back_in_every_epoch_raises(gaussians):
    X, Y = gaussians
    with pytest.raises(DivergenceError, match=r"every epoch of the fit: 3 restore\(s\) in 3"):
        _mi(callbacks=[PoisonAt(epochs=(1, 2, 3), batch=2)]).fit(X, Y)


def test_restores_are_counted_warned_and_saved(gaussians, tmp_path):
    X, Y = gaussians
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = _mi(callbacks=[PoisonAt(epochs=(2,), batch=3)]).fit(X, Y)
    (message,) = _restore_warnings(caught)
    assert "rolled back 1 time(s)" in message and "in epoch(s) 2" in message
    assert f"to {estimator.learning_rate / 2:g}" in message
    assert estimator.n_restores_ == 1
    # The warning points at the user's call of fit, not at the package's code.
    (warning,) = [w for w in caught if "rolled back" in str(w.message)]
    assert warning.filename == __file__

    path = tmp_path / "model.skmlcpc"
    estimator.set_params(callbacks=None).save(path)  # a fault injector is no model part
    assert MutualInformationEstimator.load(path).n_restores_ == 1


def test_a_healthy_fit_records_no_restore_and_says_nothing(gaussians):
    X, Y = gaussians
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = _mi().fit(X, Y)
    assert estimator.n_restores_ == 0 and _restore_warnings(caught) == []


def test_a_file_without_the_count_loads_with_it_read_from_the_history(gaussians, tmp_path):
    # Files written before n_restores_ existed: the history holds every restore.
    X, Y = gaussians
    estimator = _mi(callbacks=[PoisonAt(epochs=(2,), batch=3)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, Y)
    path = tmp_path / "model.skmlcpc"
    estimator.set_params(callbacks=None).save(path)
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("model.json"))
        weights = archive.read("weights.pt")
    del manifest["fitted"]["n_restores_"]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.json", json.dumps(manifest))
        archive.writestr("weights.pt", weights)
    loaded = MutualInformationEstimator.load(path)
    assert loaded.n_restores_ == 1
    np.testing.assert_array_equal(loaded.transform(X[:5]), estimator.transform(X[:5]))


def test_a_validation_divergence_with_restore_on_does_not_advise_restore(gaussians):
    X, Y = gaussians
    with pytest.raises(DivergenceError, match="at validation batch 1 of epoch 1") as caught:
        _mi(callbacks=[PoisonAt(validation=True)]).fit(X, Y)
    message = str(caught.value)
    assert "pass on_divergence='restore'" not in message
    assert "repairs training steps only" in message and "Lower learning_rate" in message


def test_without_restore_the_advice_still_offers_it(gaussians):
    X, Y = gaussians
    with pytest.raises(DivergenceError, match="pass on_divergence='restore'"):
        _mi(on_divergence="raise", callbacks=[PoisonAt(validation=True)]).fit(X, Y)


def test_giving_up_after_the_restores_does_not_advise_restore(gaussians):
    X, Y = gaussians

    class EveryBatch(Callback):
        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            if training:
                with torch.no_grad():
                    next(net.module_.parameters()).fill_(math.nan)

    with pytest.raises(DivergenceError, match="after 5 restores") as caught:
        _mi(callbacks=[EveryBatch()]).fit(X, Y)
    assert "pass on_divergence='restore'" not in str(caught.value)
