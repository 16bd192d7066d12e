"""The ``sk-mlcpc`` command line."""

import json
import sys

import numpy as np
import pytest

from sk_mlcpc._cli import main
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
    assert auto["cap"] == pytest.approx(np.log(128 * 127 + 1))
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
