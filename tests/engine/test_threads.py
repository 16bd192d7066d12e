"""``n_threads``: the thread count inside fit, transform and score, restored afterwards.

The limit itself (:func:`~sk_mlcpc._engine.threads.thread_limit`) is tested on its own,
then through the public methods of all four estimators, with the tiny settings of the
skeleton tests. A thread count is process state, so every test starts from a count that
no estimator asks for (3) and puts back the one it found.
"""

from __future__ import annotations

import threading

import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback
from threadpoolctl import threadpool_info

from sk_mlcpc._engine.threads import available_cores, resolve_n_threads, thread_limit
from tests.estimators.test_skeleton import CASES, Case

OUTSIDE = 3  # the count set before each test: none of the tests below asks for it

# What the training loop sees, written by a callback (the estimators fit copies of it).
SEEN_IN_TRAINING: list[int] = []


class _RecordThreads(Callback):
    def on_batch_begin(self, net, **kwargs) -> None:
        SEEN_IN_TRAINING.append(torch.get_num_threads())


class _Fails(Callback):
    def on_epoch_begin(self, net, **kwargs) -> None:
        raise RuntimeError("failing on purpose")


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


@pytest.fixture(autouse=True)
def _outside_count():
    before = torch.get_num_threads()
    torch.set_num_threads(OUTSIDE)
    SEEN_IN_TRAINING.clear()
    yield
    torch.set_num_threads(before)


def _ids(case: Case) -> str:
    return case.name


over_all = pytest.mark.parametrize("case", CASES, ids=_ids)


def _record_forward(estimator) -> list[int]:
    """Counts seen by every forward pass of the fitted network from now on."""
    seen: list[int] = []
    for module in estimator.net_.module_.modules():
        module.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    return seen


# ---------------------------------------------------------------------------------------
# the limit on its own


@pytest.mark.parametrize(
    ("n_threads", "expected"),
    [(None, 1), (1, 1), (4, 4), (-1, available_cores()), (-(available_cores() + 7), 1)],
)
def test_resolve_n_threads(n_threads, expected):
    assert resolve_n_threads(n_threads) == expected


def test_limit_applies_inside_and_restores_torch_and_blas():
    blas_before = _blas_threads()
    with thread_limit(1):
        assert torch.get_num_threads() == 1
        assert all(count == 1 for count in _blas_threads())
    assert torch.get_num_threads() == OUTSIDE
    assert _blas_threads() == blas_before


def test_limit_restores_when_the_block_raises():
    blas_before = _blas_threads()
    with pytest.raises(KeyError), thread_limit(2):
        raise KeyError("inside")
    assert torch.get_num_threads() == OUTSIDE
    assert _blas_threads() == blas_before


def test_nested_limits_restore_the_enclosing_count():
    with thread_limit(1):
        with thread_limit(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == OUTSIDE


def test_overlapping_limits_in_two_threads_restore_the_count_found_first():
    # A enters, B enters, A leaves while B is inside, B leaves: the count is process-wide,
    # so B must keep its limit when A leaves, and the original count must come back last.
    a_inside, b_inside, a_left, b_may_leave = (threading.Event() for _ in range(4))
    seen: dict[str, int] = {}

    def first() -> None:
        with thread_limit(1):
            a_inside.set()
            b_inside.wait(5)
        a_left.set()

    def second() -> None:
        a_inside.wait(5)
        with thread_limit(1):
            b_inside.set()
            a_left.wait(5)
            seen["b after a left"] = torch.get_num_threads()
            b_may_leave.wait(5)

    workers = [threading.Thread(target=first), threading.Thread(target=second)]
    for worker in workers:
        worker.start()
    a_left.wait(5)
    b_may_leave.set()
    for worker in workers:
        worker.join(10)
    assert seen == {"b after a left": 1}
    assert torch.get_num_threads() == OUTSIDE


# ---------------------------------------------------------------------------------------
# through the estimators


@over_all
@pytest.mark.parametrize("n_threads", [None, 2])
def test_fit_and_prediction_run_with_n_threads_and_restore_the_count(case, n_threads):
    estimator = case.make(n_threads=n_threads, callbacks=[_RecordThreads()])
    arguments = case.fit_data()
    estimator.fit(*arguments)
    expected = resolve_n_threads(n_threads)
    assert SEEN_IN_TRAINING and set(SEEN_IN_TRAINING) == {expected}
    assert torch.get_num_threads() == OUTSIDE

    seen = _record_forward(estimator)
    case.output(estimator, arguments)
    estimator.score(*arguments)
    assert seen and set(seen) == {expected}
    assert torch.get_num_threads() == OUTSIDE


@over_all
def test_scoring_methods_restore_the_count(case):
    estimator = case.make().fit(*case.fit_data())
    arguments = case.fit_data(seed=1)
    seen = _record_forward(estimator)
    paired = {"evaluate", "score_samples"}  # these take (X, y); the others X alone
    for name in ("evaluate", "score_samples", "score_per_step", "predict", "transform"):
        if hasattr(estimator, name):
            getattr(estimator, name)(*(arguments if name in paired else arguments[:1]))
            assert torch.get_num_threads() == OUTSIDE, name
    assert set(seen) == {1}


@over_all
def test_a_fit_that_raises_restores_the_count(case):
    blas_before = _blas_threads()
    estimator = case.make(n_threads=1, callbacks=[_Fails()])
    with pytest.raises(RuntimeError, match="failing on purpose"):
        estimator.fit(*case.fit_data())
    assert torch.get_num_threads() == OUTSIDE
    assert _blas_threads() == blas_before


@over_all
@pytest.mark.parametrize("value", [0, 1.5, "auto"])
def test_invalid_n_threads_is_refused_by_name(case, value):
    with pytest.raises(InvalidParameterError, match="'n_threads' parameter"):
        case.make(n_threads=value).fit(*case.fit_data())
    assert torch.get_num_threads() == OUTSIDE


@over_all
def test_n_threads_is_documented(case):
    assert "n_threads : int or None, default=None" in case.cls.__doc__


def test_a_warning_of_evaluate_still_points_at_the_users_call():
    # The limit wraps evaluate in one more frame; the warning's stacklevel counts it.
    (case,) = [case for case in CASES if case.name == "MutualInformationEstimator"]
    estimator = case.make(eval_batch_size=32).fit(*case.fit_data())
    X, Y = case.fit_data(seed=1)
    with pytest.warns(UserWarning, match="Only 10 rows given") as caught:
        estimator.evaluate(X[:10], Y[:10])
    assert {w.filename for w in caught if "Only 10 rows" in str(w.message)} == {__file__}
