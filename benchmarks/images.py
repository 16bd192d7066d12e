"""Linear-probe benchmark of ContrastiveEncoder on images: digits with image-aware views.

Protocol (the one of ``benchmarks/representation.py``, kept fixed): for each seed, a
stratified 75/25 train/test split of scikit-learn's digits (1,797 images of 8 x 8
pixels) with ``random_state=seed``; each representation is fitted on all the training
rows *without labels*; the probe ``make_pipeline(StandardScaler(),
LogisticRegression(max_iter=5000))`` is trained on a stratified 10% of the training rows'
labels (``random_state=seed``) and on all of them, and scored on the test split. Rows:

- ``raw pixels``: the 64 pixel values;
- ``tabular views, <objective>``: ContrastiveEncoder with its tabular defaults (feature
  corruption, per-column standardisation, an MLP), as ``benchmarks/representation.py``;
- ``image views, <objective>``: ContrastiveEncoder(image_shape=(8, 8)) at its defaults:
  random shifts, rotations and zooms on the pixel grid, one mean and scale for all
  pixels, a small convolutional encoder whose pooled feature map (64 channels x 2 x 2
  cells: 256 numbers per image, ``n_components="auto"``) is the embedding;
- ``untrained conv encoder``: the same convolutional encoder with its random initial
  weights (seeded by the split's seed), the same pixel scaling, batch normalisation
  statistics of the training rows, no training: the control that says what the
  contrastive training adds beyond the architecture and the width.

The tabular encoders return 32 numbers per image (``n_components=32``, as in the
representation benchmark). Fit time is the representation's ``fit`` alone, on one CPU
thread.

Run::

    OMP_NUM_THREADS=1 python benchmarks/images.py [--seeds 0 1 2 3 4] [--set name=value]

and it writes ``benchmarks/results/images{_tag}.{json,txt}`` (``--set`` passes
parameters to the image-view encoders, for tuning; ``--rows`` picks rows).
"""

from __future__ import annotations

import argparse
import ast
import json
import platform
import re
import statistics
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import FunctionTransformer

sys.path.insert(0, str(Path(__file__).parent))
from representation import probe_accuracy  # the same probe

from sk_mlcpc import ContrastiveEncoder, SaturationWarning
from sk_mlcpc.encoders import ConvEncoder

RESULTS = Path(__file__).parent / "results"
WIDTH = 32
ROWS = (
    "raw pixels",
    "tabular views, cpc",
    "tabular views, ml_cpc",
    "image views, cpc",
    "image views, ml_cpc",
    "untrained conv encoder",
)


class UntrainedConvEncoder(TransformerMixin, BaseEstimator):
    """The image mode's default ConvEncoder with random weights: the control row."""

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        self.mean_, self.scale_ = X.mean(), X.std()  # one scaling for all pixels
        with torch.random.fork_rng():
            torch.manual_seed(self.random_state)
            self.encoder_ = ConvEncoder((8, 8))
        for module in self.encoder_.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None  # running statistics: the mean over the batches seen
        with torch.no_grad():
            self.encoder_.train()(self._scaled(X))
        self.encoder_.eval()
        return self

    def _scaled(self, X) -> torch.Tensor:
        X = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        return torch.as_tensor(X, dtype=torch.float32)

    def transform(self, X) -> np.ndarray:
        with torch.no_grad():
            return self.encoder_(self._scaled(X)).numpy()


def representation(row: str, seed: int, image_params: dict):
    if row == "raw pixels":
        return FunctionTransformer()
    if row == "untrained conv encoder":
        return UntrainedConvEncoder(random_state=seed)
    kind, objective = row.split(", ")
    params = {"objective": objective, "random_state": seed}
    if kind == "image views":
        params.update(image_shape=(8, 8), **image_params)  # n_components at its default
    else:
        params.update(n_components=WIDTH)
    return ContrastiveEncoder(**params)


def run(seeds: list[int], rows: list[str], image_params: dict) -> list[dict]:
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    records = []
    for seed in seeds:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.25, stratify=y, random_state=seed
        )
        for row in rows:
            model = representation(row, seed, image_params)
            start = time.perf_counter()
            model.fit(X_train)
            fit_seconds = time.perf_counter() - start
            Z_train, Z_test = model.transform(X_train), model.transform(X_test)
            record = {
                "seed": seed,
                "representation": row,
                "width": int(Z_train.shape[1]),
                "fit_seconds": fit_seconds,
                "acc_10": probe_accuracy(Z_train, y_train, Z_test, y_test, 0.1, seed),
                "acc_100": probe_accuracy(Z_train, y_train, Z_test, y_test, 1.0, seed),
            }
            if isinstance(model, ContrastiveEncoder):
                record["held_out_mi"] = model.mi_
            records.append(record)
            print(
                f"seed {seed} {row:24s} acc@10% {record['acc_10']:.3f} "
                f"acc@100% {record['acc_100']:.3f} fit {fit_seconds:6.2f}s",
                flush=True,
            )
    return records


def _mean_std(values: list[float], digits: int = 3) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def format_table(records: list[dict]) -> str:
    header = (
        f"| {'representation':24s} | {'width':5s} | {'acc, 10% labels':17s} | "
        f"{'min..max, 10%':13s} | {'acc, 100% labels':17s} | {'fit s':13s} | {'held-out MI':13s} |"
    )
    lines = [header, "|" + "|".join("-" * len(part) for part in header.split("|")[1:-1]) + "|"]
    for row in dict.fromkeys(r["representation"] for r in records):
        chosen = [r for r in records if r["representation"] == row]
        acc_10 = [r["acc_10"] for r in chosen]
        mi = [r["held_out_mi"] for r in chosen if "held_out_mi" in r]
        lines.append(
            f"| {row:24s} | {chosen[0]['width']:5d} | {_mean_std(acc_10):17s} | "
            f"{f'{min(acc_10):.3f}..{max(acc_10):.3f}':13s} | "
            f"{_mean_std([r['acc_100'] for r in chosen]):17s} | "
            f"{_mean_std([r['fit_seconds'] for r in chosen], 1):13s} | "
            f"{(_mean_std(mi) if mi else '-'):13s} |"
        )
    return "\n".join(lines)


def format_rst(records: list[dict], caption: str) -> str:
    """The table as a reStructuredText list-table, for the documentation."""
    out = [
        f".. list-table:: {caption}",
        "   :header-rows: 1",
        "",
        "   * - representation",
        "     - width",
        "     - accuracy, 10% labels",
        "     - accuracy, 100% labels",
        "     - fit time (s)",
    ]
    for row in dict.fromkeys(r["representation"] for r in records):
        chosen = [r for r in records if r["representation"] == row]
        out += [
            f"   * - {row}",
            f"     - {chosen[0]['width']}",
            f"     - {_mean_std([r['acc_10'] for r in chosen])}",
            f"     - {_mean_std([r['acc_100'] for r in chosen])}",
            f"     - {_mean_std([r['fit_seconds'] for r in chosen], 1)}",
        ]
    return "\n".join(out) + "\n"


def _parse_set(items: list[str]) -> dict:
    params = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--set", nargs="*", default=[], help="image-view encoder parameters")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="re-render the rst table of an earlier run from its json and txt (same --tag)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    # mi_ (the views' MI) is reported, not what is compared: its saturation is expected.
    warnings.simplefilter("ignore", SaturationWarning)
    image_params = _parse_set(args.set)
    stem = "images" + (f"_{args.tag}" if args.tag else "")
    if args.render_only:
        records = json.loads((RESULTS / f"{stem}.json").read_text())
        header = (RESULTS / f"{stem}.txt").read_text().splitlines()[0]
        args.seeds = sorted({r["seed"] for r in records})
        args.rows = list(dict.fromkeys(r["representation"] for r in records))
        (RESULTS / f"{stem}.rst").write_text(_rst(records, args, image_params, header))
        return
    started = time.perf_counter()
    records = run(args.seeds, args.rows, image_params)
    header = (
        f"sk-mlcpc image benchmark (digits, 8 x 8), {date.today()}, {platform.machine()} CPU, "
        f"torch {torch.__version__}, 1 thread, seeds {args.seeds}, "
        f"image-view parameters {image_params or 'defaults'}, "
        f"{time.perf_counter() - started:.0f} s total"
    )
    text = "\n".join([header, "", format_table(records)])
    print("\n" + text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(records, indent=1))
    (RESULTS / f"{stem}.txt").write_text(text + "\n")
    (RESULTS / f"{stem}.rst").write_text(_rst(records, args, image_params, header))


def _rst(records: list[dict], args, image_params: dict, header: str) -> str:
    command = "python benchmarks/images.py --seeds " + " ".join(map(str, args.seeds))
    if list(args.rows) != list(ROWS):
        command += " --rows " + " ".join(f'"{row}"' for row in args.rows)
    if image_params:
        command += " --set " + " ".join(f"{k}={v!r}" for k, v in image_params.items())
    day = re.search(r"\d{4}-\d{2}-\d{2}", header).group()
    return format_rst(records, f"digits, ``{command}`` ({day}, 1 CPU thread)")


if __name__ == "__main__":
    main()
