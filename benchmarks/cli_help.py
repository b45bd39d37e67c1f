"""How long `tlearn --help` (and, with --commands, every `tlearn COMMAND --help`) takes: a fresh process each
time, the median of N runs. The help is built without importing torch, so it should stay well under a second.

    python benchmarks/cli_help.py [--repeats 5] [--commands]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(argv: list[str], repeats: int) -> float:
    """Median wall time of `python -m tlearn ARGV` over `repeats` fresh processes."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tlearn", *argv], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="fresh processes per command")
    p.add_argument("--commands", action="store_true", help="also time every `tlearn COMMAND --help`")
    args = p.parse_args()
    print(f"tlearn --help: median {median_seconds(['--help'], args.repeats):.3f} s over {args.repeats} runs")
    if args.commands:
        sys.path.insert(0, str(ROOT))
        from tlearn.cli import COMMANDS

        for name in COMMANDS:
            print(f"tlearn {name} --help: median {median_seconds([name, '--help'], args.repeats):.3f} s")


if __name__ == "__main__":
    main()
