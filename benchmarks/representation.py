"""Linear-probe benchmark of ContrastiveEncoder on datasets that ship with scikit-learn.

Protocol, per dataset and seed: a stratified 75/25 train/test split; each representation
is fitted on all training rows *without labels*; a standardised logistic regression is
trained on 10% (stratified) and on 100% of the training labels and scored on the test
split. Rows: raw features, PCA with the same width as the embeddings, and
ContrastiveEncoder (default parameters except the objective) with CPC, ML-CPC at alpha=1
(proven bound), ML-CPC at alpha="auto", and ML-CPC with the paper's geometric curriculum
from 10 to 0.1. Fit time is the representation's ``fit`` alone, on one CPU thread.

Run::

    OMP_NUM_THREADS=1 python benchmarks/representation.py [--seeds 5] [--quick]

and it writes ``benchmarks/results/representation.{json,txt}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sk_mlcpc import ContrastiveEncoder

RESULTS = Path(__file__).parent / "results"


def nuisance_classification(random_state: int = 0):
    """4 classes from 8 informative features hidden among 92 noisy, redundant and repeated ones."""
    return make_classification(
        n_samples=3000,
        n_features=100,
        n_informative=8,
        n_redundant=8,
        n_repeated=4,
        n_classes=4,
        n_clusters_per_class=2,
        class_sep=1.0,
        flip_y=0.02,
        random_state=random_state,
    )


DATASETS = {
    "digits": lambda: load_digits(return_X_y=True),
    "breast_cancer": lambda: load_breast_cancer(return_X_y=True),
    "wine": lambda: load_wine(return_X_y=True),
    "classification_nuisance": nuisance_classification,
}


def representations(width: int, seed: int, max_epochs: int | None):
    extra = {} if max_epochs is None else {"max_epochs": max_epochs}

    def encoder(**params):
        return ContrastiveEncoder(n_components=width, random_state=seed, **extra, **params)

    return {
        "raw": FunctionTransformer(),
        "pca": make_pipeline(StandardScaler(), PCA(n_components=width, random_state=seed)),
        "cpc": encoder(objective="cpc"),
        "ml_cpc (alpha=1)": encoder(objective="ml_cpc", alpha=1.0),
        "ml_cpc (alpha=auto)": encoder(objective="ml_cpc", alpha="auto"),
        "ml_cpc (10 -> 0.1 geometric)": encoder(
            objective="ml_cpc", alpha=10.0, alpha_final=0.1, alpha_schedule="geometric"
        ),
    }


def probe_accuracy(Z_train, y_train, Z_test, y_test, fraction: float, seed: int) -> float:
    if fraction < 1.0:
        Z_train, _, y_train, _ = train_test_split(
            Z_train, y_train, train_size=fraction, stratify=y_train, random_state=seed
        )
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    return float(probe.fit(Z_train, y_train).score(Z_test, y_test))


def run(seeds: int, datasets: list[str], max_epochs: int | None) -> list[dict]:
    records = []
    for name in datasets:
        X, y = DATASETS[name]()
        X = X.astype(np.float32)
        width = min(32, X.shape[1])
        for seed in range(seeds):
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=0.25, stratify=y, random_state=seed
            )
            for label, model in representations(width, seed, max_epochs).items():
                start = time.perf_counter()
                model.fit(X_train)
                fit_seconds = time.perf_counter() - start
                Z_train, Z_test = model.transform(X_train), model.transform(X_test)
                record = {
                    "dataset": name,
                    "seed": seed,
                    "representation": label,
                    "width": int(Z_train.shape[1]),
                    "fit_seconds": fit_seconds,
                    "acc_10": probe_accuracy(Z_train, y_train, Z_test, y_test, 0.1, seed),
                    "acc_100": probe_accuracy(Z_train, y_train, Z_test, y_test, 1.0, seed),
                }
                if isinstance(model, ContrastiveEncoder):
                    record["held_out_mi"] = model.mi_
                    record["epochs"] = model.n_epochs_
                records.append(record)
                print(
                    f"{name:24s} seed {seed} {label:30s} acc@10% {record['acc_10']:.3f} "
                    f"acc@100% {record['acc_100']:.3f} fit {fit_seconds:6.2f}s",
                    flush=True,
                )
    return records


def _mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _widths(rows: list[dict]) -> str:
    raw = next(r["width"] for r in rows if r["representation"] == "raw")
    other = next(r["width"] for r in rows if r["representation"] != "raw")
    return f"{raw} raw features, embeddings of width {other}"


def format_table(records: list[dict]) -> str:
    lines = []
    for name in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == name]
        lines.append(f"\n{name} ({_widths(rows)}, {len({r['seed'] for r in rows})} seeds)")
        header = f"| {'representation':30s} | {'acc, 10% labels':17s} | "
        header += f"{'acc, 100% labels':17s} | {'fit s':13s} | {'held-out MI':13s} |"
        lines.append(header)
        lines.append("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
        for label in dict.fromkeys(r["representation"] for r in rows):
            chosen = [r for r in rows if r["representation"] == label]
            mi = [r["held_out_mi"] for r in chosen if "held_out_mi" in r]
            lines.append(
                f"| {label:30s} | {_mean_std([r['acc_10'] for r in chosen]):17s} | "
                f"{_mean_std([r['acc_100'] for r in chosen]):17s} | "
                f"{_mean_std([r['fit_seconds'] for r in chosen]):13s} | "
                f"{(_mean_std(mi) if mi else '-'):13s} |"
            )
    return "\n".join(lines)


def format_rst(records: list[dict], header: str) -> str:
    """The same tables as reStructuredText list-tables, for the documentation."""
    out = [header, ""]
    for name in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == name]
        n_seeds = len({r["seed"] for r in rows})
        out += [
            f".. list-table:: {name} ({_widths(rows)}, {n_seeds} seeds)",
            "   :header-rows: 1",
            "",
            "   * - representation",
            "     - accuracy, 10% labels",
            "     - accuracy, 100% labels",
            "     - fit time (s)",
            "     - held-out MI between views (nats)",
        ]
        for label in dict.fromkeys(r["representation"] for r in rows):
            chosen = [r for r in rows if r["representation"] == label]
            mi = [r["held_out_mi"] for r in chosen if "held_out_mi" in r]
            out += [
                f"   * - {label}",
                f"     - {_mean_std([r['acc_10'] for r in chosen])}",
                f"     - {_mean_std([r['acc_100'] for r in chosen])}",
                f"     - {_mean_std([r['fit_seconds'] for r in chosen])}",
                f"     - {_mean_std(mi) if mi else 'n/a'}",
            ]
        out.append("")
    return "\n".join(out)


def paired_comparison(records: list[dict], first: str, second: str, key: str) -> str:
    """Seed-paired wins of ``first`` over ``second`` across every dataset and seed."""
    index = {(r["dataset"], r["seed"], r["representation"]): r[key] for r in records}
    pairs = [
        (value, index[(d, s, second)])
        for (d, s, rep), value in index.items()
        if rep == first and (d, s, second) in index
    ]
    wins = sum(a > b for a, b in pairs)
    ties = sum(a == b for a, b in pairs)
    mean_gap = statistics.mean(a - b for a, b in pairs)
    return (
        f"{first} vs {second} ({key}): wins {wins}, ties {ties}, losses "
        f"{len(pairs) - wins - ties} of {len(pairs)}; mean difference {mean_gap:+.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--max-epochs", type=int, default=None, help="default: the estimator's")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 10 epochs")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="re-render the tables of an earlier run from its json (same --tag)",
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.max_epochs = 2, 10
    torch.set_num_threads(1)
    stem = "representation" + (f"_{args.tag}" if args.tag else "")
    started = time.perf_counter()
    if args.render_only:
        records = json.loads((RESULTS / f"{stem}.json").read_text())
        header = (RESULTS / f"{stem}.txt").read_text().splitlines()[0]
    else:
        records = run(args.seeds, args.datasets, args.max_epochs)
        header = (
            f"sk-mlcpc representation benchmark, {date.today()}, "
            f"{platform.machine()} CPU, torch {torch.__version__}, 1 thread, "
            f"{time.perf_counter() - started:.0f} s total"
        )
    table = format_table(records)
    comparisons = [
        paired_comparison(records, mlcpc, "cpc", key)
        for mlcpc in ("ml_cpc (alpha=1)", "ml_cpc (alpha=auto)", "ml_cpc (10 -> 0.1 geometric)")
        for key in ("acc_10", "acc_100")
    ]
    text = "\n".join([header, table, "", *comparisons])
    print("\n" + text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{stem}.json").write_text(json.dumps(records, indent=1))
        (RESULTS / f"{stem}.txt").write_text(text + "\n")
        command = "OMP_NUM_THREADS=1 python benchmarks/representation.py " + " ".join(
            f"--{key.replace('_', '-')} {value}"
            for key, value in (
                ("seeds", args.seeds),
                ("max_epochs", args.max_epochs),
                ("tag", args.tag or None),
            )
            if value is not None
        )
        rst_header = f"``{command}`` ({header.split(', ', 1)[1]})"
        (RESULTS / f"{stem}.rst").write_text(format_rst(records, rst_header))


if __name__ == "__main__":
    main()
