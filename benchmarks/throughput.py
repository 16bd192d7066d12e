"""Training throughput and peak memory of dense vs blockwise ML-CPC, against the batch size.

Each configuration (path, batch size, precision) runs in a fresh interpreter: a small
separable critic (two MLPs 8 -> 64 -> 32) is trained with Adam on correlated Gaussian
batches, with the loss ``-ml_cpc`` at ``alpha="auto"`` computed either densely from the
``n x n`` score matrix (:func:`sk_mlcpc.bounds.ml_cpc`) or in tiles without it
(:func:`sk_mlcpc.blockwise.blockwise_bound`). One warm-up step, then timed steps until
``--steps`` steps or ``--seconds`` seconds (at least one).

Peak memory is the rise of the peak resident set (VmHWM, reset through
``/proc/self/clear_refs``) over the resident set before the first step: the working
memory of a training step (plus the optimiser state, a few parameter-sized tensors),
excluding the data and the model. On CUDA it is ``torch.cuda.max_memory_allocated`` over
the allocated memory before the first step. Dense sizes whose predicted footprint (bytes per ``n^2``
fitted on the largest dense size measured so far) exceeds ``--max-dense-gib`` are
skipped and reported as such. The largest batch that fits in 8 GiB is extrapolated from
the measurements: quadratic for the dense path, linear for the blockwise path.

Run on CPU with one thread (the machine may be shared)::

    OMP_NUM_THREADS=1 python benchmarks/throughput.py

and on a GPU::

    python benchmarks/throughput.py --device cuda --sizes 4096,65536 --precisions fp32,bf16

and for the joint critic (an MLP on every concatenated pair ``[x_i, y_j]``), whose
memory-bounded path scores the pairs in chunks with activation checkpointing
(:func:`sk_mlcpc.blockwise.chunked_scores`, as the estimators do)::

    OMP_NUM_THREADS=1 python benchmarks/throughput.py --critic concat \
        --sizes 128,512,1024,2048,4096 --out benchmarks/results/throughput_concat

Results go to ``benchmarks/results/throughput.txt`` and ``.json`` (``--out`` changes the
stem).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

GIB = 2**30
TARGET_GIB = 8.0
DEFAULT_SIZES = "128,512,2048,4096,8192,16384,32768,65536"
#: Prior for the dense path before anything is measured: bytes per n^2 entry.
DENSE_PRIOR_BYTES_PER_ENTRY = 24.0

_WORKER = textwrap.dedent(
    """
    import json, math, sys, time
    import torch

    config = json.loads(sys.argv[1])
    torch.set_num_threads(config["threads"])
    from sk_mlcpc.blockwise import blockwise_bound, chunked_scores, separable_parts
    from sk_mlcpc.bounds import ml_cpc, resolve_alpha
    from sk_mlcpc.critics import ConcatCritic, SeparableCritic
    from sk_mlcpc._engine.net import PAIRS_PER_CHUNK

    device = torch.device(config["device"])
    n = config["batch_size"]
    torch.manual_seed(0)
    if config["critic"] == "concat":
        critic = ConcatCritic(8, 8, hidden_layer_sizes=(64, 64)).to(device)
    else:
        critic = SeparableCritic(8, 8, embedding_dim=32, hidden_layer_sizes=(64,)).to(device)
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3)
    alpha = resolve_alpha("auto", "ml_cpc", n)
    rho = 0.8
    x = torch.randn(n, 8, device=device)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, 8, device=device)
    autocast = config["precision"] == "bf16"

    def status(field):
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    def reset_peak():
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return torch.cuda.memory_allocated()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        return status("VmRSS")

    def peak():
        if device.type == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated()
        return status("VmHWM")

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            if config["path"] == "dense":
                bound = ml_cpc(critic(x, y), alpha=alpha)
            elif config["path"] == "chunked":  # what the estimators do for joint critics
                rows = max(1, PAIRS_PER_CHUNK // n)
                bound = ml_cpc(chunked_scores(critic, x, y, chunk_size=rows), alpha=alpha)
            else:
                g, h, a, b = separable_parts(critic, x, y)
                bound = blockwise_bound(
                    "ml_cpc", g, h, a=a, b=b, alpha=alpha, block_size=config["block_size"]
                )
        loss = -bound.float()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    # The peak is measured from before the first step: a warm-up step's freed pages can
    # stay resident (allocator pools) and be reused unseen by the later steps.
    before = reset_peak()
    step()  # warm-up, untimed: kernels, allocator pools, optimiser state
    sync()
    steps, start = 0, time.perf_counter()
    while True:
        loss = step()
        steps += 1
        sync()
        elapsed = time.perf_counter() - start
        if steps >= config["steps"] or elapsed >= config["seconds"]:
            break
    print(json.dumps({
        "steps": steps,
        "seconds": elapsed,
        "steps_per_s": steps / elapsed,
        "peak_bytes": peak() - before,
        "loss": float(loss),
        "finite": bool(math.isfinite(float(loss))),
    }))
    """
)


def run_config(config: dict, timeout: float) -> dict:
    """One configuration in a fresh interpreter; returns its JSON report."""
    env = {**os.environ, "OMP_NUM_THREADS": str(config["threads"])}
    result = subprocess.run(
        [sys.executable, "-c", _WORKER, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def fit_dense(rows: list[dict], path: str = "dense") -> float:
    """Bytes per n^2 entry of a quadratic path, from its largest measured batch."""
    measured = [r for r in rows if r["path"] == path and "peak_bytes" in r]
    if not measured:
        return DENSE_PRIOR_BYTES_PER_ENTRY
    largest = max(measured, key=lambda r: r["batch_size"])
    return largest["peak_bytes"] / largest["batch_size"] ** 2


def fit_blockwise(rows: list[dict]) -> tuple[float, float] | None:
    """``peak = intercept + slope * n`` through the two largest blockwise batches."""
    measured = sorted(
        (r for r in rows if r["path"] == "blockwise" and "peak_bytes" in r),
        key=lambda r: r["batch_size"],
    )
    if len(measured) < 2:
        return None
    (n0, p0), (n1, p1) = ((r["batch_size"], r["peak_bytes"]) for r in measured[-2:])
    slope = max((p1 - p0) / (n1 - n0), 1.0)
    return p1 - slope * n1, slope


def format_table(rows: list[dict]) -> list[str]:
    lines = [
        f"{'path':<10} {'precision':<9} {'batch':>7} {'steps/s':>9} {'s/step':>8} "
        f"{'peak MiB':>9} {'n^2 fp32 MiB':>12}  note"
    ]
    for r in rows:
        square = r["batch_size"] ** 2 * 4 / 2**20
        if "steps_per_s" in r:
            lines.append(
                f"{r['path']:<10} {r['precision']:<9} {r['batch_size']:>7} "
                f"{r['steps_per_s']:>9.3f} {1 / r['steps_per_s']:>8.3f} "
                f"{r['peak_bytes'] / 2**20:>9.1f} {square:>12.0f}  "
                f"{r['steps']} timed step(s)"
            )
        else:
            lines.append(
                f"{r['path']:<10} {r['precision']:<9} {r['batch_size']:>7} {'-':>9} {'-':>8} "
                f"{'-':>9} {square:>12.0f}  {r['note']}"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated batch sizes")
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16")
    parser.add_argument(
        "--critic",
        default="separable",
        choices=["separable", "concat"],
        help="concat: the joint critic (8+8 -> 64 -> 64 -> 1), paths dense and chunked",
    )
    parser.add_argument("--paths", default=None, help="default: dense,blockwise (chunked)")
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30, help="at most this many timed steps")
    parser.add_argument("--seconds", type=float, default=4.0, help="stop timing after this")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--max-dense-gib",
        type=float,
        default=3.0,
        help="skip dense batches predicted to need more working memory than this",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="per configuration")
    parser.add_argument("--out", default="benchmarks/results/throughput")
    args = parser.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",")]
    precisions = args.precisions.split(",")
    default_paths = "dense,chunked" if args.critic == "concat" else "dense,blockwise"
    paths = (args.paths or default_paths).split(",")
    started = datetime.datetime.now()
    rows: list[dict] = []
    for precision in precisions:
        for path in paths:
            for n in sizes:
                row = {"path": path, "precision": precision, "batch_size": n}
                if path == "dense":
                    predicted = fit_dense([r for r in rows if r["precision"] == precision]) * n**2
                    if predicted > args.max_dense_gib * GIB:
                        row["note"] = (
                            f"skipped: predicted {predicted / GIB:.1f} GiB > "
                            f"--max-dense-gib {args.max_dense_gib:g}"
                        )
                        rows.append(row)
                        print(" ".join(format_table([row])[1:]), flush=True)
                        continue
                config = {
                    **row,
                    "critic": args.critic,
                    "device": args.device,
                    "block_size": args.block_size,
                    "steps": args.steps,
                    "seconds": args.seconds,
                    "threads": args.threads,
                }
                try:
                    report = run_config(config, args.timeout)
                except subprocess.TimeoutExpired:
                    report = {"error": f"timed out after {args.timeout:g} s"}
                if "error" in report:
                    row["note"] = f"failed: {report['error']}"
                else:
                    row.update(report)
                rows.append(row)
                print(format_table([row])[1], flush=True)

    summary = []
    for precision in precisions:
        subset = [r for r in rows if r["precision"] == precision]
        dense_per_entry = fit_dense(subset)
        dense_max = math.isqrt(int(TARGET_GIB * GIB / dense_per_entry))
        summary.append(
            f"[{precision}] dense: {dense_per_entry:.1f} bytes per n^2 entry "
            f"(= {dense_per_entry / 4:.1f} float32 n x n matrices live at the peak) -> largest "
            f"batch in {TARGET_GIB:g} GiB ~ {dense_max:,}"
        )
        if "chunked" in paths:
            chunked_per_entry = fit_dense(subset, "chunked")
            summary.append(
                f"[{precision}] chunked: {chunked_per_entry:.1f} bytes per n^2 entry -> largest "
                f"batch in {TARGET_GIB:g} GiB ~ "
                f"{math.isqrt(int(TARGET_GIB * GIB / chunked_per_entry)):,}"
            )
        fit = fit_blockwise(subset)
        if fit is not None:
            intercept, slope = fit
            block_max = int((TARGET_GIB * GIB - intercept) / slope)
            summary.append(
                f"[{precision}] blockwise: peak ~ {intercept / 2**20:.1f} MiB + "
                f"{slope:.0f} bytes x n -> largest batch in {TARGET_GIB:g} GiB ~ "
                f"{block_max:,} (memory is no longer the limit: time per step grows as n^2)"
            )

    critic = (
        "joint concat critic 8+8 -> 64 -> 64 -> 1"
        if args.critic == "concat"
        else "separable critic 8 -> 64 -> 32"
    )
    header = [
        f"{' vs '.join(paths)} ML-CPC training steps ({critic}, Adam, alpha='auto')",
        f"command: {' '.join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])])}",
        f"date: {started:%Y-%m-%d %H:%M}; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, device {args.device}, {args.threads} thread(s), "
        f"block_size {args.block_size}",
        "peak MiB: working memory of a training step (peak over all steps minus the memory "
        "in use before the first)",
        "",
    ]
    text = "\n".join([*header, *format_table(rows), "", *summary]) + "\n"
    print()
    print("\n".join(summary))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".txt").write_text(text)
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "date": started.isoformat(timespec="minutes"),
                "device": args.device,
                "threads": args.threads,
                "block_size": args.block_size,
                "rows": rows,
                "summary": summary,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
