"""Fit time by thread count, on an idle machine and beside busy processes (issue 27, item 8).

The workload is the default ``MutualInformationEstimator`` fit, four epochs, on 10,000
pairs of a 20-dimensional Gaussian (``make_correlated_gaussians(10_000, 20, mi=2.0)``).
Each fit runs in a fresh Python process (the thread pools start cold, as a user's do,
after a small untimed warm-up fit in that process) and only ``fit`` is timed. Three
settings are compared:

* ``one thread``: ``n_threads=1``;
* ``torch default``: ``n_threads=`` the count torch picks by itself in a fresh process
  (one per core), which is what every fit used before ``n_threads`` existed;
* ``estimator default``: no thread setting at all, the estimator's default.

The package timed is the one a fresh ``python -c`` imports from the working directory, so
that running the script from an unpacked older version (``git archive``) times that
version: there ``n_threads`` does not exist, and the counts are set with
:func:`torch.set_num_threads` instead (``estimator default`` is then torch's default).

Two situations: ``idle`` (nothing started by this script) and ``loaded``, where
``--busy`` processes (default 2) spin on the CPU from before the first fit until after
the last; they stop by themselves after ``--busy-seconds`` and are killed at the end. The
settings take turns within each repeat, so that a drift of the machine's speed touches
all of them. A fit that runs past ``--fit-timeout`` is stopped and shown as that bound.

Run::

    python benchmarks/threads.py                      # both situations, 3 repeats
    python benchmarks/threads.py --repeats 5 --situations loaded

It prints each setting's min / median / max seconds and the ratios of the medians that
the issue asks about: under load the default against one thread (target <= 1.2), idle
the default against torch's default (target <= 1.1). On a shared machine "idle" means
only that this script adds no load: read the min column there too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

CHILD = textwrap.dedent(
    """
    import json, sys, time, warnings
    warnings.simplefilter("ignore")
    import torch
    import sk_mlcpc
    from sk_mlcpc import MutualInformationEstimator
    from sk_mlcpc.datasets import make_correlated_gaussians

    threads = json.loads(sys.argv[1])
    params = {}
    if threads is not None:
        if "n_threads" in MutualInformationEstimator().get_params():
            params["n_threads"] = threads
        else:  # a version from before n_threads: torch's own setter, for the whole process
            torch.set_num_threads(threads)
    X, Y, _ = make_correlated_gaussians(10_000, 20, mi=2.0, random_state=0)
    MutualInformationEstimator(max_epochs=1, random_state=0, **params).fit(X[:500], Y[:500])
    start = time.perf_counter()
    MutualInformationEstimator(max_epochs=4, random_state=0, **params).fit(X, Y)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "package": sk_mlcpc.__file__}))
    """
)

# One core's worth of work that ends by itself, should this script die before killing it.
BUSY = textwrap.dedent(
    """
    import sys, time
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        pass
    """
)


def fresh_process() -> tuple[int, str]:
    """The intra-op thread count of a fresh process that sets none, and the package timed."""
    code = "import torch, sk_mlcpc; print(torch.get_num_threads(), sk_mlcpc.__file__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    threads, package = out.stdout.split(maxsplit=1)
    return int(threads), package.strip()


def time_fit(setting: int | None, timeout: float) -> float:
    """Seconds of one fit in a fresh process (``timeout`` if it ran past it)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(setting)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    except subprocess.TimeoutExpired:
        return timeout
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def run_situation(settings: dict[str, int | None], repeats: int, timeout: float) -> dict[str, list]:
    times: dict[str, list[float]] = {name: [] for name in settings}
    for repeat in range(repeats):
        # Rotate who goes first, so that no setting always meets the same moment.
        names = list(settings)
        names = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in names:
            times[name].append(time_fit(settings[name], timeout))
            print(f"  {name:<22} {times[name][-1]:7.2f} s", file=sys.stderr, flush=True)
    return times


def start_busy(count: int, seconds: float) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", BUSY, str(seconds)]) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
        process.wait()


def report(situation: str, times: dict[str, list[float]], timeout: float) -> None:
    repeats = len(next(iter(times.values())))
    print(f"\n{situation}: seconds per fit (min / median / max over {repeats})")
    for name, values in times.items():
        capped = " (some hit the timeout)" if max(values) >= timeout else ""
        print(
            f"  {name:<22} {min(values):7.2f} {statistics.median(values):7.2f} "
            f"{max(values):7.2f}{capped}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--situations", default="idle,loaded")
    parser.add_argument("--busy", type=int, default=2, help="busy processes when loaded")
    parser.add_argument("--busy-seconds", type=float, default=1800)
    parser.add_argument("--fit-timeout", type=float, default=180)
    args = parser.parse_args()

    default_threads, package = fresh_process()
    settings = {"one thread": 1, f"torch default ({default_threads})": default_threads}
    settings["estimator default"] = None
    print(
        f"cores: {len(os.sched_getaffinity(0))}, torch default threads: {default_threads}, "
        f"load average before: {os.getloadavg()[0]:.2f}\npackage: {package}"
    )
    results = {}
    for situation in args.situations.split(","):
        print(f"{situation} ...", file=sys.stderr, flush=True)
        busy = start_busy(args.busy, args.busy_seconds) if situation == "loaded" else []
        try:
            time.sleep(1 if busy else 0)
            results[situation] = run_situation(settings, args.repeats, args.fit_timeout)
        finally:
            stop(busy)
        report(situation, results[situation], args.fit_timeout)
        med = {name: statistics.median(values) for name, values in results[situation].items()}
        one, torch_default, default = med.values()
        print(
            f"  median ratios: default / one thread {default / one:.2f}, "
            f"default / torch default {default / torch_default:.2f}, "
            f"torch default / one thread {torch_default / one:.2f}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
