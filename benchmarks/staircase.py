"""The paper's MI staircase at full settings (a thin wrapper over ``sk-mlcpc staircase``).

Run::

    python benchmarks/staircase.py                      # 4,000 steps/level, joint critic 400
    python benchmarks/staircase.py --joint-steps 4000   # the joint critic in full (GPU)

The table is printed; the figure and the numbers go to ``benchmarks/results/staircase``.
"""

import sys

from sk_mlcpc._tools.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    defaults = [
        "--steps",
        "4000",
        "--joint-steps",
        "400",
        "--output",
        "benchmarks/results/staircase",
    ]
    raise SystemExit(main(["staircase", *defaults, *args]))
