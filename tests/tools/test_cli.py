"""The ``sk-mlcpc`` command line."""

import json
import sys

import numpy as np
import pytest

from sk_mlcpc._tools.cli import build_parser, main, read_table
from sk_mlcpc.datasets import make_correlated_gaussians


def test_staircase_writes_table_figure_and_numbers(tmp_path, capsys):
    status = main(
        [
            "staircase",
            "--steps",
            "4",
            "--critics",
            "separable",
            "--tasks",
            "gaussian",
            "--output",
            str(tmp_path),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "separable ml_cpc a=auto" in out and "cap" in out
    records = json.loads((tmp_path / "staircase.json").read_text())
    assert len(records) == 4  # CPC and ML-CPC at alpha 1, 0.1, auto
    assert {r["objective"] for r in records} == {"cpc", "ml_cpc"}
    assert all(r["true_mi"] == [2.0, 4.0, 6.0, 8.0, 10.0] for r in records)
    auto = next(r for r in records if r["alpha_param"] == "auto")
    assert auto["validity"] == "claimed"
    # alpha="auto" at 128 rows is alpha* times the searched ratio 1.007 (bounds._AUTO_RATIOS).
    assert auto["cap"] == pytest.approx(np.log(128 * 127 + 1) - np.log(1.007))
    assert (tmp_path / "staircase.png").stat().st_size > 10_000


@pytest.mark.parametrize("header", [True, False])
def test_estimate_reads_csv_files(tmp_path, capsys, header):
    X, Y, _ = make_correlated_gaussians(600, 2, mi=1.0, random_state=0)
    for name, data in (("x.csv", X), ("y.csv", Y)):
        np.savetxt(
            tmp_path / name, data, delimiter=",", header="a,b" if header else "", comments=""
        )
    status = main(
        ["estimate", str(tmp_path / "x.csv"), str(tmp_path / "y.csv"), "--max-epochs", "3"]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "I(X; Y) estimate:" in out and "nats" in out and "validity: claimed" in out


def test_estimate_reports_mismatched_files(tmp_path, capsys):
    np.savetxt(tmp_path / "x.csv", np.zeros((10, 2)), delimiter=",")
    np.savetxt(tmp_path / "y.csv", np.zeros((12, 2)), delimiter=",")
    status = main(["estimate", str(tmp_path / "x.csv"), str(tmp_path / "y.csv")])
    assert status == 2
    assert "same number of rows" in capsys.readouterr().err


def test_estimate_reports_missing_file(tmp_path, capsys):
    status = main(["estimate", str(tmp_path / "nope.csv"), str(tmp_path / "nope.csv")])
    assert status == 2
    assert "error" in capsys.readouterr().err


def test_staircase_without_matplotlib_still_prints_the_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    args = ["staircase", "--steps", "2", "--critics", "separable", "--tasks", "gaussian"]
    status = main([*args, "--output", str(tmp_path)])
    assert status == 0
    out = capsys.readouterr().out
    assert "not drawn: matplotlib is not installed" in out
    assert (tmp_path / "staircase.json").exists()
    assert not (tmp_path / "staircase.png").exists()


# ------------------------------------------------------------------ options


def _files(tmp_path, n=300):
    X, Y, _ = make_correlated_gaussians(n, 2, mi=1.0, random_state=0)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    np.savetxt(tmp_path / "y.csv", Y, delimiter=",")
    return str(tmp_path / "x.csv"), str(tmp_path / "y.csv")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sk-mlcpc estimate: error: "), err
    assert "Traceback" not in err
    return err


def test_estimate_help_gives_text_default_and_choices_for_every_option(capsys):
    assert main(["estimate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    parser = build_parser()
    (estimate,) = [
        action.choices["estimate"]
        for action in parser._actions
        if isinstance(action, __import__("argparse")._SubParsersAction)
    ]
    options = [a for a in estimate._actions if a.option_strings and a.dest != "help"]
    assert {a.dest for a in options} >= {"batch_size", "eval_batch_size", "alpha", "device"}
    for action in options:
        assert action.help, action.dest
        assert f"(default: {action.default})" in text, action.dest
        if action.choices:
            assert "{" + ",".join(action.choices) + "}" in text
    assert "(default: 128)" in text and "(default: auto)" in text


@pytest.mark.parametrize(
    "option, value",
    [
        ("--alpha", "weird"),
        ("--alpha", "-1"),
        ("--batch-size", "x"),
        ("--batch-size", "1"),
        ("--eval-batch-size", "1"),
        ("--eval-batch-size", "big"),
        ("--max-epochs", "0"),
        ("--objective", "foo"),
        ("--critic", "foo"),
        ("--device", "nonsense"),
        ("--device", "meta"),
        ("--verbose", "loud"),
    ],
)
def test_every_option_error_names_the_option_in_one_line(tmp_path, capsys, option, value):
    x, y = _files(tmp_path, n=20)
    assert main(["estimate", x, y, option, value]) == 2
    err = _one_error_line(capsys)
    assert f"argument {option}: " in err and value in err


def test_an_estimator_error_names_the_option(tmp_path, capsys):
    x, y = _files(tmp_path)
    # alpha above the batch size is refused by the bound, which names alpha, not --alpha.
    assert main(["estimate", x, y, "--alpha", "500", "--max-epochs", "1"]) == 2
    assert "argument --alpha: alpha must lie in (0, m]" in _one_error_line(capsys)


def test_batch_sizes_reach_the_estimator(tmp_path, capsys):
    x, y = _files(tmp_path)
    args = ["--batch-size", "32", "--eval-batch-size", "20", "--max-epochs", "1"]
    assert main(["estimate", x, y, *args]) == 0
    out = capsys.readouterr().out
    assert "at batch 20 (training: batch 32," in out and "interval of the bound [" in out
    assert main(["estimate", x, y, "--eval-batch-size", "auto", "--max-epochs", "1"]) == 0


def test_every_package_error_is_one_line_with_status_2(tmp_path, capsys, monkeypatch):
    from sk_mlcpc import DivergenceError, MutualInformationEstimator

    x, y = _files(tmp_path, n=20)
    for error in (
        DivergenceError("Training diverged:\n at batch 3"),
        RuntimeError("CUDA out of memory.\nTried to allocate"),
        TypeError("a bad\ntype"),
    ):

        def fail(self, X, y, error=error):
            raise error

        monkeypatch.setattr(MutualInformationEstimator, "fit", fail)
        assert main(["estimate", x, y]) == 2
        assert " ".join(str(error).split()) in _one_error_line(capsys)


def test_warnings_are_one_line_each(tmp_path, capsys, monkeypatch):
    import warnings

    from sk_mlcpc import MutualInformationEstimator

    x, y = _files(tmp_path, n=40)
    fit = MutualInformationEstimator.fit

    def fit_and_warn(self, X, Y):
        warnings.warn("first line\nsecond line", UserWarning, stacklevel=2)
        return fit(self, X, Y)

    monkeypatch.setattr(MutualInformationEstimator, "fit", fit_and_warn)
    assert main(["estimate", x, y, "--max-epochs", "1", "--batch-size", "8"]) == 0
    err = capsys.readouterr().err
    assert "sk-mlcpc estimate: warning: first line second line\n" in err
    assert all(line.startswith("sk-mlcpc estimate: warning: ") for line in err.splitlines())


# ------------------------------------------------------------------ files


def test_quoted_numbers_tabs_semicolons_and_spaces_are_read(tmp_path):
    expected = np.array([[1.5, -2.0], [3.0, 4e-3]])
    for name, text in {
        "quoted.csv": 'a,b\n"1.5","-2"\n"3", 4e-3\n',
        "tabs.tsv": "1.5\t-2\n3\t0.004\n",
        "semicolons.csv": "a;b\n1.5;-2\n3;0.004\n",
        "spaces.txt": "# comment\n  1.5   -2\n\n3 0.004\n",
        "bom.csv": "\ufeffa,b\n1.5,-2\n3,0.004\n",
    }.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        np.testing.assert_array_equal(read_table(tmp_path / name), expected, err_msg=name)


def test_file_errors_name_the_file_and_the_line_an_editor_shows(tmp_path, capsys):
    # Line 1 is the header and line 50 is blank: the bad cell is on line 101 of the file
    # (the 99th row of data; numpy's reader said "row 99, column 1").
    lines = ["a,b"] + ["0,0"] * 48 + [""] + ["1,1"] * 50 + ["x,1", "2,2"]
    assert lines[100] == "x,1"
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    _, y = _files(tmp_path, n=99)
    assert main(["estimate", str(tmp_path / "bad.csv"), y]) == 2
    err = _one_error_line(capsys)
    assert f"{tmp_path / 'bad.csv'}, line 101, column 1: 'x' is not a number" in err


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b\n1,2\n3,\n", "line 3, column 2: missing value (empty cell)"),
        ("a,b\n1,nan\n", "line 2, column 2: missing value ('nan')"),
        ("1,2\n3,NA\n", "line 2, column 2: missing value ('NA')"),
        ("1,2\n3,inf\n", "line 2, column 2: 'inf' is not a finite number"),
        ("1,2\n3\n", "line 2: 1 column, but line 1 has 2"),
        ("a,b\n\n", "holds no rows of numbers"),
    ],
)
def test_missing_and_malformed_cells(tmp_path, capsys, text, message):
    (tmp_path / "bad.csv").write_text(text)
    assert main(["estimate", str(tmp_path / "bad.csv"), str(tmp_path / "bad.csv")]) == 2
    err = _one_error_line(capsys)
    assert f"{tmp_path / 'bad.csv'}, {message}" in err or message in err
    # Advice that does not apply to a file of numbers is not given.
    assert "HistGradientBoosting" not in err


def test_a_decoding_error_names_the_file_and_line(tmp_path, capsys):
    (tmp_path / "latin1.csv").write_bytes("a,b\n1,2\n3,4 \u00b0C\n".encode("latin-1"))
    x, _ = _files(tmp_path, n=20)
    assert main(["estimate", x, str(tmp_path / "latin1.csv")]) == 2
    err = _one_error_line(capsys)
    assert f"{tmp_path / 'latin1.csv'}, line 3: not UTF-8 text (byte 0xb0)" in err


def test_an_interrupted_estimate_exits_130_in_one_line(tmp_path, capsys, monkeypatch):
    from sk_mlcpc import MutualInformationEstimator

    x, y = _files(tmp_path, n=20)

    def interrupted(self, X, y):
        raise KeyboardInterrupt("MutualInformationEstimator.fit was interrupted during epoch 2")

    monkeypatch.setattr(MutualInformationEstimator, "fit", interrupted)
    assert main(["estimate", x, y]) == 130
    err = capsys.readouterr().err
    assert err == (
        "sk-mlcpc estimate: interrupted: MutualInformationEstimator.fit was interrupted "
        "during epoch 2\n"
    )


def test_staircase_figure_gives_each_objective_one_colour_in_every_panel(tmp_path, monkeypatch):
    """Panels with different sets of curves still colour each objective alike."""
    from types import SimpleNamespace

    import matplotlib.figure

    from sk_mlcpc._tools.staircase import plot_staircase

    figures = []
    monkeypatch.setattr(
        matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figures.append(self)
    )

    def result(critic, label):
        config = SimpleNamespace(critic=critic, label=f"{critic} {label}")
        return SimpleNamespace(
            transform=None, config=config, estimates=np.zeros((2, 20)), steps_per_level=20,
            true_mi=np.array([2.0, 4.0]), cap=4.85,
        )  # fmt: skip

    # The joint critic's panel lacks CPC: a colour cycle per panel would shift its colours.
    results = [
        result("separable", "cpc"),
        result("separable", "ml_cpc a=auto"),
        result("concat", "ml_cpc a=auto"),
    ]
    plot_staircase(results, str(tmp_path / "figure.png"))
    (figure,) = figures
    colours: dict[str, set] = {}
    for axis in figure.axes:
        for line in axis.get_lines():
            if line.get_label() in ("cpc", "ml_cpc a=auto"):
                colours.setdefault(line.get_label(), set()).add(line.get_color())
    assert colours.keys() == {"cpc", "ml_cpc a=auto"}
    assert all(len(found) == 1 for found in colours.values()), colours
    assert colours["cpc"] != colours["ml_cpc a=auto"]


def test_a_digit_separator_is_not_read_as_a_number(tmp_path, capsys):
    """float("1_000") is 1000 in Python; in a data file it is a typo or a label."""
    (tmp_path / "bad.csv").write_text("1,2\n1_000,3\n")
    with pytest.raises(ValueError, match=r"line 2, column 1: '1_000' is not a number"):
        read_table(tmp_path / "bad.csv")


@pytest.mark.parametrize("scale", [1e-9, 1e12])
def test_estimate_reads_the_same_in_any_units_and_switches_preprocessing(tmp_path, capsys, scale):
    """A 2-d Gaussian in units of 1e-9 printed 0.0000 nats before (scikit-learn's quantile
    map has an absolute tolerance of 1e-7); the estimate is now the same in any units."""
    X, Y, _ = make_correlated_gaussians(800, 2, mi=1.0, random_state=0)
    readings = {}
    for name, factor in (("unit", 1.0), ("scaled", scale)):
        np.savetxt(tmp_path / f"x_{name}.csv", X * factor, delimiter=",", fmt="%.17g")
        np.savetxt(tmp_path / f"y_{name}.csv", Y * factor, delimiter=",", fmt="%.17g")
        arguments = ["estimate", str(tmp_path / f"x_{name}.csv"), str(tmp_path / f"y_{name}.csv")]
        assert main([*arguments, "--max-epochs", "5"]) == 0
        out = capsys.readouterr().out
        readings[name] = float(out.split("I(X; Y) estimate: ")[1].split()[0])
    assert readings["unit"] > 0.3
    assert readings["scaled"] == pytest.approx(readings["unit"], abs=1e-3)
    arguments = [*arguments, "--max-epochs", "2", "--preprocessing", "standard", "--baseline"]
    assert main([*arguments, "none"]) == 0
    assert main([*arguments, "other"]) == 2
    assert "argument --baseline: invalid choice" in capsys.readouterr().err


# ------------------------------------------------------------------ row indexes (issue 27)


def _estimate_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("I(X; Y) estimate:"))


def test_a_pandas_index_column_is_left_out_with_a_warning(tmp_path, capsys):
    """pandas' default to_csv writes the row index under an empty header cell; in both
    files it read 4.45 nats where the truth was 2.49. It is left out, with a warning."""
    pd = pytest.importorskip("pandas")
    X, Y, _ = make_correlated_gaussians(300, 2, mi=1.0, random_state=0)
    pd.DataFrame(X, columns=["a", "b"]).to_csv(tmp_path / "x_pandas.csv")
    pd.DataFrame(Y, columns=["c", "d"]).to_csv(tmp_path / "y_pandas.csv")
    with pytest.warns(UserWarning, match=r"x_pandas.csv: column 1 is left out: its header cell"):
        np.testing.assert_array_equal(read_table(tmp_path / "x_pandas.csv"), X)
    x, y = _files(tmp_path)
    assert main(["estimate", x, y, "--max-epochs", "2"]) == 0
    clean = _estimate_line(capsys.readouterr().out)
    args = [str(tmp_path / "x_pandas.csv"), str(tmp_path / "y_pandas.csv"), "--max-epochs", "2"]
    assert main(["estimate", *args]) == 0
    captured = capsys.readouterr()
    assert _estimate_line(captured.out) == clean  # the same rows, the same estimate
    for name in ("x_pandas.csv", "y_pandas.csv"):
        assert f"warning: {tmp_path / name}: column 1 is left out" in captured.err
    assert "index=False" in captured.err


@pytest.mark.parametrize(
    "text",
    [
        ",a,b\n0,1.5,2\n1,3,4\n",  # pandas, unnamed index
        '"","a","b"\n"r1",1.5,2\n"r2",3,4\n',  # R's write.csv, text row names
        '"a" "b"\n"1" 1.5 2\n"2" 3 4\n',  # R's write.table: one name fewer than columns
    ],
)
def test_row_labels_marked_by_the_header_are_left_out(tmp_path, text):
    (tmp_path / "t.csv").write_text(text)
    with pytest.warns(UserWarning, match="column 1 is left out"):
        table = read_table(tmp_path / "t.csv")
    np.testing.assert_array_equal(table, [[1.5, 2.0], [3.0, 4.0]])


def test_a_named_first_column_is_data(tmp_path, recwarn):
    (tmp_path / "t.csv").write_text("t,a\n0,1.5\n1,3\n")
    np.testing.assert_array_equal(read_table(tmp_path / "t.csv"), [[0, 1.5], [1, 3]])
    assert not [w for w in recwarn if "left out" in str(w.message)]


@pytest.mark.parametrize("start", [0, 1])
def test_the_same_row_numbers_in_both_files_are_refused_with_the_remedy(tmp_path, capsys, start):
    """An index written without the empty header cell (header=False, or a named index)
    cannot be told from data, so the CLI refuses it rather than guess."""
    X, Y, _ = make_correlated_gaussians(300, 2, mi=1.0, random_state=0)
    rows = np.arange(start, start + 300)[:, None]
    np.savetxt(tmp_path / "x.csv", np.hstack([rows, X]), delimiter=",")
    np.savetxt(tmp_path / "y.csv", np.hstack([rows, Y]), delimiter=",")
    assert main(["estimate", str(tmp_path / "x.csv"), str(tmp_path / "y.csv")]) == 2
    err = _one_error_line(capsys)
    assert f"both begin with the column {start}, {start + 1}, {start + 2}, ..." in err
    assert "Remove column 1 from both files, or write them with to_csv(path, index=False)" in err


# ------------------------------------------------------------------ progress, warnings, version


def test_version(capsys):
    from sk_mlcpc import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"sk-mlcpc {__version__}\n"


def test_verbose_help_lists_every_level(capsys):
    assert main(["estimate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for level in (
        "'auto': one progress line per epoch on stderr when it is a terminal",
        "0:",
        "1:",
        "2:",
    ):
        assert level in text
    assert "(default: auto)" in text


class _Terminal:
    """A stderr that says it is a terminal."""

    def __init__(self):
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_lines_on_a_terminal_only(tmp_path, capsys, monkeypatch, terminal):
    x, y = _files(tmp_path)
    stream = _Terminal()
    if terminal:
        monkeypatch.setattr(sys, "stderr", stream)
    assert main(["estimate", x, y, "--max-epochs", "2"]) == 0
    err = "".join(stream.lines) + capsys.readouterr().err
    epochs = [line for line in err.splitlines() if ": epoch " in line]
    if terminal:
        assert len(epochs) == 2 and epochs[0].startswith("sk-mlcpc estimate: epoch 1/2, ")
        assert "validation bound" in epochs[0] and "nats" in epochs[0]
    else:
        assert epochs == []
    if terminal:  # --verbose 0 silences the terminal too
        stream.lines.clear()
        assert main(["estimate", x, y, "--max-epochs", "2", "--verbose", "0"]) == 0
        assert not [line for line in "".join(stream.lines).splitlines() if ": epoch " in line]


@pytest.mark.filterwarnings("default::sklearn.exceptions.ConvergenceWarning")
def test_warnings_name_options_not_python_parameters(tmp_path, capsys):
    """The convergence warning advised learning_rate and warm_start=True, which the
    command has no option for; it names --max-epochs and says which have none."""
    x, y = _files(tmp_path)
    assert main(["estimate", x, y, "--max-epochs", "1"]) == 0
    (line,) = [w for w in capsys.readouterr().err.splitlines() if "still improving" in w]
    assert "Raise --max-epochs or learning_rate" in line and "max_epochs" not in line
    assert line.endswith(
        "(learning_rate and warm_start: no option of sk-mlcpc estimate; they are "
        "parameters of the Python class sk_mlcpc.MutualInformationEstimator)"
    )


def test_warning_advice_in_options():
    from sk_mlcpc._tools.cli import _for_the_command_line

    text = _for_the_command_line(
        "pass baseline=None to silence this; eval_batch_size='auto' takes them all; "
        "baseline_ is None; use alpha='auto'.",
        "sk-mlcpc estimate",
    )
    assert text == (
        "pass --baseline none to silence this; --eval-batch-size auto takes them all; "
        "baseline_ is None; use --alpha auto."
    )


def test_the_staircase_figure_says_quick_run_and_draws_each_cap(tmp_path, monkeypatch):
    import matplotlib.figure

    captured = []
    real_savefig = matplotlib.figure.Figure.savefig

    def capture(figure, *args, **kwargs):
        captured.append(
            [(axis.get_title(), [line.get_label() for line in axis.lines]) for axis in figure.axes]
        )
        return real_savefig(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)
    arguments = ["staircase", "--steps", "4", "--critics", "separable", "--tasks", "gaussian"]
    assert main([*arguments, "--output", str(tmp_path)]) == 0
    ((title, labels),) = [panel for panel in captured[-1] if panel[0]]
    assert "quick run: 4 steps a level; the paper: 4,000" in title
    caps = sorted(float(label.split()[1]) for label in labels if label.startswith("cap "))
    # CPC's log 128, ML-CPC's log(128 / 0.1) and, at alpha="auto", log(128 * 127 + 1) less
    # the searched margin (alpha = 1 shares CPC's cap).
    assert caps[0] == pytest.approx(np.log(128), abs=0.01)
    assert caps[-1] == pytest.approx(np.log(128 * 127 + 1) - np.log(1.007), abs=0.01)
    assert len(caps) == 3


def test_estimate_reads_integer_labels_as_classes_unless_told(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 2))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    np.savetxt(tmp_path / "y.csv", labels, fmt="%d")
    x, y = str(tmp_path / "x.csv"), str(tmp_path / "y.csv")
    assert main(["estimate", x, y, "--max-epochs", "2", "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "Barber-Agakov over the 3 classes of Y" in out and "validity: proven" in out
    args = ["--max-epochs", "2", "--verbose", "0", "--target-type", "continuous"]
    assert main(["estimate", x, y, *args]) == 0
    assert "bound: ml_cpc" in capsys.readouterr().out
