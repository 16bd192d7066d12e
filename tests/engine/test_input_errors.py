"""Input errors name the argument, the row and the column of the offending cell (issue 27).

scikit-learn said "Input X contains NaN." for a NaN at row 137 and "could not convert string
to float: 'abc'" for a text cell, naming neither the row nor, for text, the argument and
column.
"""

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, validate_data

from sk_mlcpc import ContrastiveEncoder, MutualInformationEstimator
from sk_mlcpc._engine.inputs import (
    INPUT_DTYPES,
    check_input,
    locate_invalid_values,
    validate_input,
)


def _x(n=200, d=3):
    return np.random.default_rng(0).normal(size=(n, d))


def test_a_nan_names_the_argument_row_and_column():
    X = _x()
    X[137, 2] = np.nan
    with pytest.raises(ValueError) as caught:
        validate_input(MutualInformationEstimator(), X, dtype=INPUT_DTYPES)
    message = str(caught.value)
    assert message.startswith("Input X contains NaN at row 137, column 2 (1 cell).")
    assert "MutualInformationEstimator needs a number in every cell" in message
    assert "SimpleImputer" in message and "HistGradientBoosting" not in message


def test_many_bad_cells_are_counted_and_their_rows_listed():
    X = _x()
    X[[150, 137, 9], [0, 1, 1]] = np.nan
    with pytest.raises(ValueError, match=r"at row 9, column 1 \(3 cells in all, in rows 9, "
                       r"137, 150, columns 0, 1\)"):  # fmt: skip
        validate_input(BaseEstimator(), X, dtype=INPUT_DTYPES)
    X = _x(500, 2)
    X[::10, 0] = np.nan
    with pytest.raises(ValueError, match=r"50 cells in all, in rows 0, 10, 20, 30, 40 and 45 more"):
        validate_input(BaseEstimator(), X, dtype=INPUT_DTYPES)


@pytest.mark.parametrize("shape", ["1d", "2d"])
def test_y_is_named_by_its_own_name(shape):
    Y = _x(200, 1)
    Y[137] = np.nan
    Y = Y.ravel() if shape == "1d" else Y
    where = "row 137" if shape == "1d" else "row 137, column 0"
    with pytest.raises(ValueError, match=rf"^Input Y contains NaN at {where} \(1 cell\)"):
        check_input(Y, input_name="Y", dtype=INPUT_DTYPES, ensure_2d=False)


def test_class_labels_with_a_nan_name_y():
    X = _x(20, 2)
    y = np.zeros(20)
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"^Input y contains NaN at row 3 \(1 cell\)"):
        validate_input(BaseEstimator(), X, y, dtype=INPUT_DTYPES)


@pytest.mark.parametrize("container", ["object array", "list", "string array"])
def test_a_text_cell_names_the_argument_and_column(container):
    rows = [[1.0, 2.0], [3.0, 4.0], [5.0, "abc"]]
    X = {
        "object array": np.array(rows, dtype=object),
        "list": rows,
        "string array": np.array(rows, dtype=str),
    }[container]
    with pytest.raises(ValueError) as caught:
        validate_input(MutualInformationEstimator(), X, dtype=INPUT_DTYPES)
    message = str(caught.value)
    assert message.startswith("Input X holds text at row 2, column 1: 'abc' is not a number")
    assert "could not convert string to float" in message  # numpy's words kept
    assert "OrdinalEncoder" in message


def test_a_dataframe_error_gives_the_index_and_column_labels():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {"age": [31.0, 40.0, np.nan], "city": ["1", "2", "3"]}, index=["ann", "bob", "cy"]
    )
    with pytest.raises(ValueError, match=r"NaN at row 2 \(index 'cy'\), column 0 \('age'\)"):
        validate_input(BaseEstimator(), frame, dtype=INPUT_DTYPES)
    frame = pd.DataFrame({"age": [31.0, 40.0, 7.0], "city": ["1", "Oslo", "3"]})
    with pytest.raises(ValueError, match=r"text at row 1, column 1 \('city'\): 'Oslo'"):
        validate_input(BaseEstimator(), frame, dtype=INPUT_DTYPES)
    nullable = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64"), "m": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"NaN at row 1, column 0 \('n'\)"):
        validate_input(BaseEstimator(), nullable, dtype=INPUT_DTYPES)


def test_infinity_and_float32_overflow_name_the_cell():
    X = _x(10, 2)
    X[4, 1] = -np.inf
    with pytest.raises(ValueError, match=r"infinity .* for float64 at row 4, column 1: -inf"):
        validate_input(BaseEstimator(), X, dtype=INPUT_DTYPES)
    X = _x(10, 2)
    X[6, 0] = 1e300  # finite in float64, infinite once cast to float32
    with (
        pytest.warns(RuntimeWarning),
        pytest.raises(ValueError, match=r"for float32 at row 6, column 0: 1e\+300"),
    ):
        validate_input(BaseEstimator(), X, dtype=np.float32)


def test_other_errors_are_scikit_learns():
    for X, kwargs in (
        (np.ones((1, 2)), {"ensure_min_samples": 2}),
        (np.ones((3, 2)) * 1j, {}),
        (np.ones((3, 0)), {}),
    ):
        with pytest.raises(ValueError) as ours:
            validate_input(BaseEstimator(), X, dtype=INPUT_DTYPES, **kwargs)
        with pytest.raises(ValueError) as theirs:
            validate_data(BaseEstimator(), X, dtype=INPUT_DTYPES, **kwargs)
        assert str(ours.value) == str(theirs.value)
    assert locate_invalid_values(np.ones(3), "X", ValueError("some other error")) is None


def test_valid_input_is_returned_as_scikit_learn_returns_it():
    X = _x(20, 3).astype(np.float32)
    ours = validate_input(BaseEstimator(), X, dtype=INPUT_DTYPES)
    assert ours.dtype == np.float32 and np.array_equal(ours, X)
    Y = check_input(list(range(5)), input_name="Y", dtype=INPUT_DTYPES, ensure_2d=False)
    np.testing.assert_array_equal(Y, check_array(list(range(5)), ensure_2d=False))


def test_mutual_information_fit_names_the_row_of_a_nan_in_x():
    X, Y = _x(), _x(200, 2)
    X[137, 1] = np.nan
    with pytest.raises(ValueError, match=r"Input X contains NaN at row 137, column 1"):
        MutualInformationEstimator(max_epochs=1).fit(X, Y)


def test_mutual_information_fit_names_the_row_of_a_nan_in_y():
    X, Y = _x(), _x(200, 2)
    Y[137, 0] = np.nan
    with pytest.raises(ValueError, match=r"Input Y contains NaN at row 137, column 0"):
        MutualInformationEstimator(max_epochs=1).fit(X, Y)


def test_encoder_fit_names_the_column_of_a_text_cell():
    X = _x().astype(object)
    X[5, 2] = "abc"
    with pytest.raises(ValueError, match=r"Input X holds text at row 5, column 2: 'abc'"):
        ContrastiveEncoder(max_epochs=1).fit(X)
