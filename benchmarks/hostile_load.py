"""Time and peak memory of ``load()`` on hostile files (issue 27, item 1).

Each case runs in a child process under a memory cap (``--cap-gb``, applied to its
address space) and a time limit, so that the code before the bounded reader, which
reads ``/dev/zero`` until the kernel stops it, can be measured safely too::

    python benchmarks/hostile_load.py            # prints one row per case

Columns: the case, seconds inside ``load``, growth of the child's peak resident memory
during ``load`` (MB), and the outcome (the exception's type and the start of its message).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from sk_mlcpc import MutualInformationEstimator
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        MutualInformationEstimator.load(sys.argv[1])
        outcome = "loaded"
    except BaseException as error:
        outcome = f"{type(error).__name__}: {str(error)[:70]}"
    seconds = time.perf_counter() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"seconds": seconds, "grown_mb": grown, "outcome": outcome}))
    """
)


def _model(folder: Path) -> Path:
    from sk_mlcpc import MutualInformationEstimator
    from sk_mlcpc.datasets import make_correlated_gaussians

    X, Y, _ = make_correlated_gaussians(2000, 5, mi=1.0, random_state=0)
    path = folder / "model.skmlcpc"
    MutualInformationEstimator(max_epochs=1, random_state=0).fit(X, Y).save(path)
    return path


def _bomb(model: Path, target: Path, member: str, n_bytes: int) -> Path:
    with zipfile.ZipFile(model) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    chunk = bytes(2**22)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            if name != member:
                archive.writestr(name, content)
                continue
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as stream:
                for start in range(0, n_bytes, len(chunk)):
                    stream.write(chunk[: min(len(chunk), n_bytes - start)])
    return target


def _huge_network(model: Path, target: Path) -> Path:
    with zipfile.ZipFile(model) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["model.json"])
    manifest["params"]["hidden_layer_sizes"] = [1_000_000, 1_000_000]
    members["model.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return target


def _run(path: Path, cap_gb: float, timeout: float) -> dict:
    cap = int(cap_gb * 2**30)

    def limit():  # the child's address space; the parent is untouched
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    try:
        completed = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "grown_mb": float("nan"), "outcome": "killed: time limit"}
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = completed.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"seconds": float("nan"), "grown_mb": float("nan"), "outcome": f"died: {tail[0]}"}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap-gb", type=float, default=6.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--bomb-gb", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        model = _model(folder)
        link = folder / "link.skmlcpc"
        link.symlink_to("/dev/zero")
        fifo = folder / "fifo.skmlcpc"
        os.mkfifo(fifo)
        bomb_bytes = int(args.bomb_gb * 2**30)
        cases = {
            "a model saved by save()": model,
            "/dev/zero": Path("/dev/zero"),
            "a symlink to /dev/zero": link,
            "a named pipe": fifo,
            "weights.pt bomb": _bomb(model, folder / "w.skmlcpc", "weights.pt", bomb_bytes),
            "model.json bomb": _bomb(model, folder / "m.skmlcpc", "model.json", bomb_bytes),
            "manifest of a 4 TB net": _huge_network(model, folder / "huge.skmlcpc"),
        }
        print(f"bombs: {args.bomb_gb:g} GiB of zeros in ", end="")
        print(f"{(folder / 'w.skmlcpc').stat().st_size / 2**20:.1f} MiB on disk")
        print(f"{'case':<26} {'seconds':>8} {'peak MB':>8}  outcome")
        for label, path in cases.items():
            row = _run(path, args.cap_gb, args.timeout)
            print(f"{label:<26} {row['seconds']:>8.2f} {row['grown_mb']:>8.1f}  {row['outcome']}")


if __name__ == "__main__":
    main()
