"""Cold start of `semsearch search`: a new process, the first result on screen.

    python bench/cli_cold.py --index .index                # 7 timed runs after one warm-up
    python bench/cli_cold.py --runs 11 --query '长三角研发投入强度'

Each run is `python -m api.cli search QUERY --k 3 --index INDEX` in its own process, as a user types it;
timed from the start of the process to the first result line on its stdout (and to its exit). The warm-up
run puts the model, the index and the Python files in the page cache, so what is measured is the cost of
the process itself: imports, opening the stores, loading the tokenizer, jieba's dictionary and the ONNX
session, and the search. Then one run under `python -X importtime` gives the import breakdown (the
slowest modules imported directly by the CLI's own code, by cumulative time).

Without --index, the default corpus (data/) is indexed into a temporary folder first (not timed).
The load average at the start is printed: on a busy machine the median is pessimistic.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUERY = "到2025年长三角研发投入强度的目标是多少"
FIRST_RESULT = re.compile(rb"^\s*1\. ")


def command(query: str, index: Path, *flags: str) -> list[str]:
    return [sys.executable, *flags, "-m", "api.cli", "search", query, "--k", "3", "--index", str(index)]


def timed_run(query: str, index: Path) -> tuple[float, float, float]:
    """(seconds to the first result line, seconds to exit, CPU seconds) of one cold process.

    The CPU time (user + system, of the process and its threads) depends far less on what else the
    machine runs than the wall-clock figures do."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # unbuffered, as on a terminal (line-buffered there): a pipe would hold the lines until exit
    process = subprocess.Popen(command(query, index), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert process.stdout is not None
    first = None
    for line in process.stdout:
        if first is None and FIRST_RESULT.match(line):
            first = time.perf_counter() - start
    if process.wait() != 0 or first is None:
        raise SystemExit(f"the search failed or printed no result (exit {process.returncode})")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return first, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_breakdown(query: str, index: Path, top: int) -> list[tuple[float, str]]:
    """The slowest imports (cumulative ms, module) of one run, nested ones folded into their importer."""
    out = subprocess.run(command(query, index, "-X", "importtime"), cwd=ROOT, capture_output=True,
                         check=True)
    rows = []
    for line in out.stderr.decode(errors="replace").splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)", line)
        if m and len(m.group(2)) <= 2:  # imported at top level, or by a module imported at top level
            rows.append((int(m.group(1)) / 1000, ("  " if m.group(2) else "") + m.group(3)))
    return sorted(rows, reverse=True)[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, help="an index folder (default: data/ indexed afresh)")
    parser.add_argument("--query", default=QUERY)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--top", type=int, default=12, help="rows of the import breakdown")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        index = args.index
        if index is None:
            index = Path(tmp) / "index"
            subprocess.run([sys.executable, "-m", "api.cli", "index", str(ROOT / "data"), "--index",
                            str(index)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        load = os.getloadavg()
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, "
              f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
        print("$ " + " ".join(command(args.query, index)).replace(sys.executable, "python"))
        timed_run(args.query, index)  # warm-up: page cache
        runs = [timed_run(args.query, index) for _ in range(args.runs)]
        firsts, exits, cpu = [r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs]
        print(f"first result: median {statistics.median(firsts):.2f} s, min {min(firsts):.2f}, "
              f"max {max(firsts):.2f} ({args.runs} runs)")
        print(f"process exit: median {statistics.median(exits):.2f} s; CPU (user + system): median "
              f"{statistics.median(cpu):.2f} s")
        print("imports (cumulative ms, `python -X importtime`):")
        for ms, module in import_breakdown(args.query, index, args.top):
            print(f"  {ms:8.1f}  {module}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
