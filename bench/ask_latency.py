"""`POST /ask` latency on the default corpus: the span reader against the sentence extractor, side by side.

    python bench/ask_latency.py                 # 15 rounds of the questions below, both answer paths
    python bench/ask_latency.py --rounds 5

Two `semsearch serve` processes on 127.0.0.1 over one index of `data/`, one per answer path
(`SEMSEARCH_ANSWER_READER=reader` / `sentences`), with the answer cache off (`SEMSEARCH_QUERY_CACHE=0`)
so every request reads its passages again. Requests alternate between the two servers, one at a time,
so both meet the same load; each question is asked once before timing (the reader's first use loads it).
Prints p50 / p95 per path and the load average, for docs/answers.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = (
    "到2025年长三角研发投入强度的目标是多少？",
    "成都超算中心周边聚集了多少个科技创新项目？",
    "2023年上海的GDP是多少？",
    "西南交通大学公共政策研究中心主任是谁？",
    "哪些省份加快打造区域科技创新中心？",
    "长三角国家技术创新中心在哪里揭牌成立？",
    "How many innovation projects are gathered around the Chengdu supercomputing center?",
    "What is the R&D intensity target of the Yangtze River Delta by 2025?",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(index: Path, path: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "SEMSEARCH_ANSWER_READER": path, "SEMSEARCH_QUERY_CACHE": "0",
           "SEMSEARCH_RATE_LIMIT": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--index", str(index), "--host", "127.0.0.1",
         "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"the server for {path} did not start in 120 s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="semsearch-ask-") as tmp:
        index = Path(tmp) / "index"
        subprocess.run([sys.executable, "-m", "api.cli", "index", "data", "--index", str(index)], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
        servers = [(path, *_serve(index, path)) for path in ("reader", "sentences")]
        times: dict[str, list[float]] = {path: [] for path, _, _ in servers}
        answered: dict[str, int] = dict.fromkeys(times, 0)
        try:
            with httpx.Client(timeout=60) as client:
                for q in QUESTIONS:  # warm-up: models loaded, pages cached
                    for _, _, url in servers:
                        client.post(f"{url}/ask", json={"question": q}).raise_for_status()
                for _ in range(args.rounds):
                    for q in QUESTIONS:
                        for path, _, url in servers:
                            t = time.perf_counter()
                            body = client.post(f"{url}/ask", json={"question": q}).json()
                            times[path].append((time.perf_counter() - t) * 1000)
                            answered[path] += body["answer"] is not None
        finally:
            for _, proc, _ in servers:
                proc.terminate()
                proc.wait(timeout=30)
    load = os.getloadavg()
    print(f"{len(QUESTIONS)} questions x {args.rounds} rounds, load average {load[0]:.2f} {load[1]:.2f}")
    print("| answer path | p50 ms | p95 ms | answered |")
    print("|---|---|---|---|")
    for path, values in times.items():
        values.sort()
        p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
        print(f"| {path} | {statistics.median(values):.0f} | {p95:.0f} | "
              f"{answered[path] / len(values):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
