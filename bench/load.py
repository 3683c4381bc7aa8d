"""Bounded load runs of the real HTTP server on loopback, and the concurrent-write figures.

    python bench/load.py                     # both corpora, 60 s each, 16 clients; writes docs/reliability.md
    python bench/load.py --build-only        # only build (or finish) the cached 20,000-passage index
    python bench/load.py --seconds 20 --corpora default --no-write

What is measured, against `python -m api.cli serve` in its own process on 127.0.0.1:

- `wrk` (Debian's package: `apt-get install -y wrk`) with 16 connections for at most `--seconds`, driven
  by a Lua script that draws every request from a table of distinct requests: 85 % `GET /search` (a
  cmrc2018 question, k 1-20, mode hybrid/dense/keyword), 10 % `POST /similar`, 5 % `POST /ask` (an
  extracted answer costs far more than a search). wrk stops
  by itself; its `done` hook prints requests, errors (socket errors and non-2xx answers) and the
  p50/p95/p99 latency, parsed here. Afterwards `/health` must still answer: the load was held.
  Rate limiting is switched off for the run (`SEMSEARCH_RATE_LIMIT=0`): all clients share one address,
  and the point is the server's own capacity, not the limiter's.
- The same scenario as `tests/api/test_concurrency.py` with a longer budget: searches from several threads
  while documents are added and deleted through the API and a `semsearch index` re-index runs on the
  same folder; failed searches and mixed-generation answers are counted.

Corpora:
- `default`: `data/` (the two seed articles), indexed into ~/.cache/semsearch/bench/load-default/.
- `20k`: about 20,000 passages (at most 32 tokens each, see PASSAGE_TOKENS) assembled from cmrc2018-dev
  sentences (`bench/query_latency.py documents()`: each document a run of real Chinese sentences from the
  whole set, so passages are not copies of each other), embedded with the REAL model (backend
  `onnx-int8` when onnxruntime is installed, else torch): slow on two cores (18 minutes on a busy
  machine), so it is built once and cached in ~/.cache/semsearch/bench/load-20k-<backend>-t32/; a killed
  build resumes where it stopped (each batch is one published generation, the embedding cache keeps
  finished vectors).

Never points at anything but 127.0.0.1; every loop is bounded in time and count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from query_latency import Server, documents, sentences  # noqa: E402 - sibling bench module
from scale import header, write_section  # noqa: E402

RELIABILITY_MD = ROOT / "docs" / "reliability.md"
CACHE = Path(os.environ.get("SEMSEARCH_BENCH_CACHE") or Path.home() / ".cache" / "semsearch" / "bench")
EVAL = ROOT.parent / "shared" / "eval" / "cmrc2018-dev"
TARGET_PASSAGES = 20_000
BATCH_DOCS = 400  # documents per published generation while building (resumable between batches)
# Passages of at most 32 model tokens (about 40 Chinese characters): a third of the embedding work of the
# default 128-token target, so the 20k index builds in minutes rather than hours on a shared two-core
# machine. What the load run measures (query embedding, vector and BM25 search over 20k entries, SQLite
# look-ups, highlighting, JSON) depends on the number of passages far more than on their length.
PASSAGE_TOKENS = 32
SECTION_LOAD = "## Load"
SECTION_CONCURRENCY = "## Writes during searches"


# --- corpora -----------------------------------------------------------------------------------------
def default_backend() -> str:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx-int8"


def build_default(folder: Path) -> Path:
    """data/ indexed with the default settings (incremental: nothing to do when already built)."""
    from index.builder import IndexBuilder

    IndexBuilder(folder).index_paths([ROOT / "data"])
    return folder


def build_20k(folder: Path, backend: str, target: int = TARGET_PASSAGES) -> dict[str, Any]:
    """Add cmrc2018 sentence documents in batches until the index holds `target` passages (resumable)."""
    from index.builder import IndexBuilder
    from index.config import IndexSettings
    from index.generations import IndexDir

    index = IndexDir(folder)
    settings = IndexSettings()
    settings.embedder.backend = backend
    settings.chunks.max_tokens = settings.chunks.target_tokens = PASSAGE_TOKENS
    made = docs = 0
    if index.current() is not None:
        manifest = index.manifest()
        made, docs = manifest.passages, manifest.documents  # documents are numbered 0, 1, … in order
        settings = IndexSettings.from_dict(manifest.settings)
    if made >= target:
        return {"passages": made, "documents": docs, "seconds": 0.0, "cached": True}
    pool = sentences()
    builder = IndexBuilder(folder, settings, progress=sys.stderr.isatty())
    started = time.perf_counter()
    while made < target:
        batch = BATCH_DOCS
        if made:  # size the last batch from the passages per document so far, to land near the target
            batch = min(batch, max(1, round((target - made) * docs / made)))
        made = builder.upsert(documents(docs, batch, pool)).passages
        docs += batch
        print(f"  {made} passages, {docs} documents, {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)
    return {"passages": made, "documents": docs, "seconds": time.perf_counter() - started, "cached": False}


def corpus_index(name: str, backend: str) -> Path:
    if name == "default":
        return build_default(CACHE / "load-default")
    folder = CACHE / f"load-20k-{backend}-t{PASSAGE_TOKENS}"
    built = build_20k(folder, backend)
    print(f"20k index: {built}", file=sys.stderr, flush=True)
    return folder


# --- requests ----------------------------------------------------------------------------------------
def questions() -> list[str]:
    rows = (EVAL / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in rows]


def request_table(n: int, seed: int = 11, search_only: bool = False) -> list[tuple[str, str, str]]:
    """(method, path, JSON body) of n distinct requests: 85 % search, 10 % similar, 5 % ask; or all search."""
    from urllib.parse import urlencode

    rng = random.Random(seed)
    pool = questions()
    rng.shuffle(pool)
    table = []
    for i in range(n):
        q = pool[i % len(pool)]
        roll = 0.0 if search_only else rng.random()
        if roll < 0.85:
            params = {"q": q, "k": rng.randint(1, 20), "mode": rng.choice(["hybrid", "dense", "keyword"])}
            table.append(("GET", "/search?" + urlencode(params), ""))
        elif roll < 0.95:
            table.append(("POST", "/similar", json.dumps({"text": q, "k": 5}, ensure_ascii=False)))
        else:
            table.append(("POST", "/ask", json.dumps({"question": q, "k": 5}, ensure_ascii=False)))
    return table


def _lua_string(text: str) -> str:
    """A Lua string literal: backslash, quote and every non-ASCII or control byte as a decimal escape."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        # always three digits: "\\34" before a digit would be read as one longer (invalid) escape
        out.append(ch if 32 <= byte < 127 and ch not in '\\"' else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


LUA_TEMPLATE = r"""
-- Generated by bench/load.py: each request drawn at random from a table of distinct requests.
local requests = {
%(rows)s
}
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(1000 + id)
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local r = requests[math.random(#requests)]
  if r[1] == "GET" then
    return wrk.format("GET", r[2])
  end
  return wrk.format(r[1], r[2], nil, r[3])
end

function done(summary, latency, requests_)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p95_us": %%d, "p99_us": %%d, ' ..
    '"mean_us": %%d, "max_us": %%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
end
"""


def write_lua(table: list[tuple[str, str, str]], path: Path) -> Path:
    rows = ",\n".join("  {" + ", ".join(_lua_string(x) for x in row) + "}" for row in table)
    path.write_text(LUA_TEMPLATE % {"rows": rows}, encoding="utf-8")
    return path


def run_wrk(url: str, script: Path, seconds: int, connections: int, threads: int = 2) -> dict[str, Any]:
    """One bounded wrk run; its own timeout plus a margin guards against a hung wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    command = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "60s",
               "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    match = re.search(r"^WRK_JSON (\{.*\})$", out.stdout, re.M)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    figures = json.loads(match.group(1))
    figures["wrk_output"] = out.stdout
    return figures


def warm_up(url: str, table: list[tuple[str, str, str]]) -> None:
    """A few requests of each kind first: jieba's dictionary and the first model calls are slow."""
    import httpx

    with httpx.Client(base_url=url, timeout=120) as client:
        for method, path, body in table[:8]:
            client.request(method, path, content=body.encode() or None,
                           headers={"content-type": "application/json"})


def load_runs(name: str, backend: str, seconds: int, connections: int, mixes: list[str]
              ) -> list[dict[str, Any]]:
    """One server on the corpus; one bounded wrk run for each request mix; a row per run."""
    import httpx

    folder = corpus_index(name, backend)
    server = Server(folder)  # its environment is ours: SEMSEARCH_RATE_LIMIT=0 (set in main)
    rows = []
    try:
        server.wait()
        health = httpx.get(server.url + "/health", timeout=30).json()
        for mix in mixes:
            table = request_table(4000, search_only=mix == "search")
            script = write_lua(table, Path(tempfile.mkdtemp(prefix="semsearch-wrk-")) / "requests.lua")
            warm_up(server.url, table)
            print(f"[{name}/{mix}] wrk {connections} connections, {seconds} s", file=sys.stderr, flush=True)
            figures = run_wrk(server.url, script, seconds, connections)
            after = httpx.get(server.url + "/health", timeout=60)
            figures["held"] = after.status_code == 200 and server.proc.poll() is None
            figures.update(corpus=name, mix=mix, passages=health["passages"], documents=health["documents"],
                           distinct_requests=len(table), connections=connections, seconds=seconds)
            figures["errors"] = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
            figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
            rows.append(figures)
    finally:
        server.stop()
    return rows


# --- report ------------------------------------------------------------------------------------------
def load_report(rows: list[dict[str, Any]], command: str) -> str:
    lines = [SECTION_LOAD, "", *header(command), ""]
    lines += [
        "wrk, 16 keep-alive connections on 127.0.0.1 for a bounded time; each request drawn from a table "
        "of 4,000 distinct requests: *mixed* is 85 % `GET /search` (a cmrc2018 question, random k 1-20 and "
        "mode), 10 % `POST /similar`, 5 % `POST /ask`; *search* is `GET /search` only. Server defaults "
        "except `SEMSEARCH_RATE_LIMIT=0`; one server per corpus, the runs one after the other. "
        "Errors are socket errors, time-outs (60 s) and non-2xx answers; *held* means `/health` still "
        "answered 200 afterwards.",
        "",
        "| corpus | passages | requests | seconds | requests served | req/s | errors | p50 ms | p95 ms "
        "| p99 ms | held |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['corpus']} | {r['passages']:,} | {r['mix']} | {r['duration_us'] / 1e6:.0f} | "
            f"{r['requests']:,} | "
            f"{r['rps']:.1f} | {r['errors']} | {r['p50_us'] / 1e3:.0f} | {r['p95_us'] / 1e3:.0f} | "
            f"{r['p99_us'] / 1e3:.0f} | {'yes' if r['held'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def concurrency_report(figures: dict[str, Any], command: str) -> str:
    lines = [SECTION_CONCURRENCY, "", *header(command), ""]
    lines += [
        "The scenario of `tests/api/test_concurrency.py` with a longer budget: search threads against the "
        "live server while documents are added and deleted through the API and `semsearch index` re-indexes "
        "the same folder in another process.",
        "",
        "| searches | failed searches | mixed-generation answers | generations seen | writes | "
        "write retries (503 index_locked) | deleted documents seen after their delete |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {figures['searches']} | {figures['failed']} | {figures['inconsistent']} | "
        f"{figures['generations']} | {figures['writes']} | {figures['retries']} | {figures['resurrected']} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", nargs="+", default=["default", "20k"], choices=["default", "20k"])
    parser.add_argument("--seconds", type=int, default=60, help="wrk duration per corpus (at most 60)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--mixes", nargs="+", default=["mixed", "search"], choices=["mixed", "search"],
                        help="mixed: 85 %% search, 10 %% similar, 5 %% ask; search: GET /search only")
    parser.add_argument("--backend", default=None, help="embedder backend of the 20k index")
    parser.add_argument("--build-only", action="store_true", help="only build or finish the 20k index")
    parser.add_argument("--skip-concurrency", action="store_true")
    parser.add_argument("--concurrency-seconds", type=float, default=60.0)
    parser.add_argument("--no-write", action="store_true", help="print, leave docs/reliability.md alone")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ["SEMSEARCH_RATE_LIMIT"] = "0"  # inherited by the server processes started here
    os.environ.pop("SEMSEARCH_API_KEY", None)
    os.environ.pop("SEMSEARCH_API_KEY_FILE", None)
    backend = args.backend or default_backend()
    command = "python bench/load.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.build_only:
        print(json.dumps(build_20k(CACHE / f"load-20k-{backend}-t{PASSAGE_TOKENS}", backend)))
        return 0
    seconds = min(args.seconds, 60)
    rows = []
    for name in args.corpora:
        for row in load_runs(name, backend, seconds, args.connections, args.mixes):
            print(json.dumps({k: v for k, v in row.items() if k != "wrk_output"}), flush=True)
            rows.append(row)
    text = load_report(rows, command)
    print(text)
    if not args.no_write:
        write_section(SECTION_LOAD, text, RELIABILITY_MD)
    if not args.skip_concurrency:
        from tests.api.test_concurrency import run_scenario_on_copy

        figures = run_scenario_on_copy(CACHE / "load-default", seconds=args.concurrency_seconds)
        text = concurrency_report(figures, command)
        print(text)
        if not args.no_write:
            write_section(SECTION_CONCURRENCY, text, RELIABILITY_MD)
    return 0


if __name__ == "__main__":
    sys.exit(main())
