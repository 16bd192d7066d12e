"""ContrastiveEncoder's divergence shows in its output scale, not its loss: it is caught.

The loss compares normalised projections, so with a too large learning rate the weights
and outputs grow without bound while every loss and gradient stays finite; the
divergence guard checks the scale of the encoder's outputs too.
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sk_mlcpc import ContrastiveEncoder, DivergenceError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return X[:900]


def _encoder(**params):
    defaults = dict(max_epochs=6, early_stopping=False, random_state=0)
    return ContrastiveEncoder(**{**defaults, **params})


def _rms(encoder, X):
    return float(np.sqrt(np.mean(encoder.transform(X) ** 2)))


def test_a_too_large_learning_rate_raises_with_advice(digits):
    # Before: the fit returned, outputs inflated a thousandfold and more, and nothing fired.
    with pytest.raises(DivergenceError) as caught:
        _encoder(learning_rate=1.0).fit(digits)
    message = str(caught.value)
    assert "outputs grown to a root mean square of" in message
    assert "times their" in message and "at training batch" in message
    assert "set weight_decay" in message and "on_divergence='restore'" in message


def test_restore_rolls_back_and_halves_until_the_scale_holds(digits):
    encoder = _encoder(learning_rate=1.0, on_divergence="restore").fit(digits)
    events = [event for row in encoder.history_ for event in row.get("divergence") or []]
    assert events and all("outputs grown" in event["reason"] for event in events)
    assert [event["learning_rate"] for event in events] == [
        1.0 / 2**k for k in range(1, len(events) + 1)
    ]
    # The kept weights are within the limit: 1000 times the first step's scale (or 1).
    reference = _rms(_encoder(max_epochs=1, learning_rate=1e-9).fit(digits), digits)
    assert np.isfinite(encoder.transform(digits)).all()
    assert _rms(encoder, digits) < 1e3 * max(reference, 1.0)


def test_an_absurd_learning_rate_gives_up_after_the_restores(digits):
    # Before: with on_divergence="restore" this returned outputs near 1e20 and mi_ = 256.
    with pytest.raises(DivergenceError, match="after 5 restores"):
        _encoder(learning_rate=1e9, on_divergence="restore").fit(digits)


def test_weight_decay_keeps_the_scale_in_check(digits):
    # The advice holds: the same learning rate with weight decay trains without a fault.
    encoder = _encoder(learning_rate=1.0, weight_decay=1e-2).fit(digits)
    assert not any(row.get("divergence") for row in encoder.history_)


def test_a_healthy_fit_is_not_flagged(digits):
    encoder = _encoder(max_epochs=10).fit(digits)
    assert not any(row.get("divergence") for row in encoder.history_)
    # The module's scale record is consumed at every step: nothing is left to pickle.
    assert encoder.net_.module_.output_scale is None
