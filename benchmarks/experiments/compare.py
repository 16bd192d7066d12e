"""Tabulate suite_tuning result files side by side: estimate per task, summary, fit time.

python benchmarks/experiments/compare.py sub_defaults noise0.1 ...
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "results" / "suite_tuning"


def read(name):
    rows, summary, header = {}, {}, {}
    for line in (ROOT / f"{name}.txt").read_text().splitlines():
        if line.startswith("# "):
            key, _, value = line[2:].partition(": ")
            header[key] = value
            continue
        parts = line.split()
        if len(parts) > 8 and parts[1] == "mi":
            rows[parts[0]] = (float(parts[3]),)
        m = re.search(r"true MI <= 2: ([\d.]+)", line)
        if m:
            summary["low"] = float(m.group(1))
        m = re.search(r"mean \|error\|, all: ([\d.]+)", line)
        if m:
            summary["all"] = float(m.group(1))
        m = re.search(r"total fit time: ([\d.]+)", line)
        if m:
            summary["time"] = float(m.group(1))
    return header, rows, summary


def main(names):
    data = {name: read(name) for name in names}
    tasks = list(dict.fromkeys(task for _, rows, _ in data.values() for task in rows))
    short = [t.replace("gauss-", "g").replace("-mi", "/")[:11] for t in tasks]
    head = "".join(f"{s:>12}" for s in short)
    print(f"{'run':<24}{head}{'low|err|':>9}{'all|err|':>9}{'fit s':>7}")
    for name, (_, rows, summary) in data.items():
        cells = "".join(f"{rows[t][0]:>12.2f}" if t in rows else f"{'-':>12}" for t in tasks)
        print(
            f"{name:<24}{cells}{summary.get('low', float('nan')):>9.3f}"
            f"{summary.get('all', float('nan')):>9.3f}{summary.get('time', float('nan')):>7.1f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
