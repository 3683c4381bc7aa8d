"""Query latency of the real HTTP server on a 100,000-passage index: `GET /search` in hybrid mode.

    python bench/query_latency.py                       # writes "## Query latency" in docs/performance.md
    python bench/query_latency.py --passages 20000 --no-write --backends torch

What is measured, all against `python -m api.cli serve` on loopback (a real uvicorn server, its own
process):
- one client, distinct queries one after another: p50 / p95 of the request as the client sees it, in
  `--rounds` rounds of `--queries` new questions each; the p50 reported is the median of the rounds'
  p50s (a shared machine's slow minutes move one round, not the figure), with the rounds' range beside it;
- 8 concurrent clients (threads with keep-alive connections), distinct queries: requests per second;
- one query repeated: served from the engine's answer cache;
- in-process breakdown of a hybrid search (query embedding, dense search, BM25, passage lookup,
  highlighting), from pyinstrument when it is installed.

The index: documents assembled from the sentences of cmrc2018-dev (each document a random run of
sentences from the whole set, so passages are real Chinese text without being copies of each other),
chunked, stored and BM25-indexed by the real builder. BENCHMARK ONLY — STUB EMBEDDER for the passages:
embedding 100k passages with the model takes hours on two cores, so the builder gets `PoolEmbedder`,
which hands out synthetic e5-shaped vectors (bench/scale.py `e5_like`). Queries are embedded by the real
model in the server (the backend of `--backends`), so query-side costs are all real; only which passages
the dense half ranks first is arbitrary. To time several query backends on one index the benchmark sets
`settings.embedder.backend` in its own throw-away index's manifest before each server start.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import ROOT, e5_like, header, write_section  # noqa: E402 - the sibling bench module

if TYPE_CHECKING:
    from index.manifest import Manifest

SECTION = "## Query latency"
EVAL = ROOT.parent / "shared" / "eval" / "cmrc2018-dev"  # the index's sentences; the questions by default
_SENTENCE = re.compile(r"[^。！？]*[。！？]")


class PoolEmbedder:
    """BENCHMARK STUB: each new passage text gets the next vector of a synthetic e5-shaped pool."""

    name = "bench-stub-pool"
    max_tokens = 512

    def __init__(self, size: int, counter: Any) -> None:
        self.pool, _ = e5_like(size, seed=1)
        self.dim = self.pool.shape[1]
        self.next = 0
        self.count_tokens = counter  # the real tokenizer's counts, so passages are chunked as for real

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        rows = np.arange(self.next, self.next + len(texts)) % len(self.pool)
        self.next += len(texts)
        return self.pool[rows]

    encode_queries = encode_passages


def token_counter() -> Any:
    """The model's tokenizer alone (tokenizers, no torch): chunk sizes as the real model sees them."""
    from tokenizers import Tokenizer

    from index.embedders.e5_model import ensure_e5_model

    tokenizer = Tokenizer.from_file(str(ensure_e5_model() / "tokenizer.json"))

    def count(texts: list[str]) -> list[int]:
        return [len(e.ids) - 2 for e in tokenizer.encode_batch(list(texts))]  # without <s> and </s>

    return count


def sentences() -> list[str]:
    out = []
    for line in (EVAL / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        out += [s for s in _SENTENCE.findall(json.loads(line)["text"]) if len(s) > 4]
    return out


def documents(start: int, n_docs: int, pool: list[str]) -> list[Any]:
    """Documents start.. of 6-14 sentences (every 1-3rd from a random point of the pool) in 2-4 paragraphs."""
    from index.documents import Document

    docs = []
    for d in range(start, start + n_docs):
        rng = random.Random(d)
        at = rng.randrange(len(pool))
        count = rng.randint(6, 14)
        picked = [pool[(at + i * rng.randint(1, 3)) % len(pool)] for i in range(count)]
        cuts = sorted(rng.sample(range(1, count), min(count - 1, rng.randint(1, 3))))
        paragraphs = ["".join(picked[a:b]) for a, b in zip([0, *cuts], [*cuts, count], strict=True)]
        date = f"20{10 + d % 16}-0{1 + d % 9}-15"
        docs.append(Document.from_paragraphs(f"q{d:06d}", paragraphs, repair=False, title=picked[0][:20],
                                             source=f"source{d % 5}", date=date))
    return docs


def build_index(folder: Path, passages: int, backend: str) -> dict[str, Any]:
    """Add documents in batches of 5,000 (one generation each) until the index holds `passages`."""
    from index.builder import IndexBuilder
    from index.config import IndexSettings
    from index.generations import IndexDir

    pool = sentences()
    settings = IndexSettings()
    settings.embedder.backend = backend
    builder = IndexBuilder(folder, settings, embedder=PoolEmbedder(passages + 20_000, token_counter()))
    t0 = time.perf_counter()
    made = docs = 0
    while made < passages:
        batch = min(5000, passages // 3 + 1)  # documents give about three passages each
        if made:  # the last batch sized from the passages per document so far
            batch = min(batch, max(1, round((passages - made) * docs / made)))
        made = builder.upsert(documents(docs, batch, pool)).passages
        docs += batch
        print(f"  {made} passages", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    manifest = IndexDir(folder).manifest()
    return {"seconds": seconds, "passages": manifest.passages, "documents": manifest.documents}


def set_backend(folder: Path, backend: str) -> None:
    """Which model backend the server embeds queries with (this benchmark's own index only)."""
    from index.generations import IndexDir

    index = IndexDir(folder)
    path = index.path(index.current() or "") / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["settings"]["embedder"]["backend"] = backend
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2))


# --- the server ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m api.cli serve` in its own process, stopped on exit."""

    def __init__(self, folder: Path, threads: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The per-client rate limit (api.security) would answer a load test from one address with 429s.
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", SEMSEARCH_RATE_LIMIT="0")
        if threads:
            env["SEMSEARCH_THREADS"] = threads  # the embedder's torch threads (index.embedders.sbert)
        self.log = Path(tempfile.mkstemp(prefix="semsearch-serve-", suffix=".log")[1])
        with open(self.log, "wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "serve", "--index", str(folder), "--port", str(self.port)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )

    def wait(self, timeout: float = 600) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.log}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the server did not answer within {timeout}s; see {self.log}")

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system, all threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def timed_get(client: Any, url: str, params: dict[str, Any]) -> float:
    t = time.perf_counter()
    response = client.get(url, params=params)
    elapsed = time.perf_counter() - t
    response.raise_for_status()
    return elapsed


def one_client(url: str, queries: list[str]) -> list[float]:
    import httpx

    with httpx.Client(timeout=60) as client:
        for q in queries[:5]:  # warm-up (jieba's dictionary, first model calls)
            timed_get(client, url + "/search", {"q": q + " 预热", "mode": "hybrid", "k": 10})
        return [timed_get(client, url + "/search", {"q": q, "mode": "hybrid", "k": 10}) for q in queries]


def concurrent_clients(url: str, queries: list[str], clients: int) -> dict[str, float]:
    """`clients` threads with their own keep-alive connection share the queries; requests per second."""
    import httpx

    times: list[float] = []
    lock = threading.Lock()
    parts = [queries[i::clients] for i in range(clients)]

    def work(part: list[str]) -> None:
        with httpx.Client(timeout=120) as client:
            mine = [timed_get(client, url + "/search", {"q": q, "mode": "hybrid", "k": 10}) for q in part]
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=work, args=(p,)) for p in parts]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"rps": len(times) / wall, "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)}


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q) * 1e3)


# --- in-process breakdown ---------------------------------------------------------------------------------
def breakdown(folder: Path, queries: list[str], backend: str) -> dict[str, float]:
    """Mean milliseconds per hybrid search in each part, timed around the engine's own calls."""
    from index.analysis import highlight_spans, query_terms
    from search.engine import Engine
    from search.hybrid import MIN_COVERAGE, dense_hits, fuse, keyword_hits
    from search.query_tower import query_tower

    engine = Engine(folder)
    snap = engine.snapshot()
    engine.search("预热 查询", k=10)
    names = ("embed", "dense", "bm25", "sentences", "fusion", "lookup", "highlight", "total")
    parts: dict[str, list[float]] = {k: [] for k in names}
    for q in queries:
        # The whole search first, on a question not seen before (timed after the parts, it would find the
        # question's posting lists and model buffers warm and look several ms faster than a real one).
        engine._answers = type(engine._answers)(0)  # noqa: SLF001 - no cache: each search does the work
        engine._query_vectors = type(engine._query_vectors)(0)  # noqa: SLF001
        t_start = time.perf_counter()
        engine.search(q, k=10, mode="hybrid")
        total = time.perf_counter() - t_start
        # The engine's encoder for this question (the query tower where keyword search hardly covers it).
        top = keyword_hits(*snap.keywords.search(q, 3)) if snap.keywords is not None else []
        across = snap.keywords is not None and engine._coverage(snap, q, top) < MIN_COVERAGE  # noqa: SLF001
        encoder = (query_tower(engine.settings.embedder) if across else None) or engine.embedder
        t0 = time.perf_counter()
        vector = encoder.encode_queries([q])
        t1 = time.perf_counter()
        scores, ids = snap.vectors.search(vector, 100)
        t2 = time.perf_counter()
        kw = snap.keywords.search(q, 100) if snap.keywords is not None else (np.zeros(0), np.zeros(0))
        t3 = time.perf_counter()
        dense, keyword = dense_hits(scores[0], ids[0]), keyword_hits(*kw)
        # the dense side re-ranked by sentence evidence (nothing without sentence vectors)
        dense = engine._rescored(snap, vector[0], dense, keyword)[:100]  # noqa: SLF001
        t3s = time.perf_counter()
        if snap.keywords is not None:  # word shares of every candidate, then the fusion itself
            coverage = engine._coverage(snap, q, keyword)  # noqa: SLF001
            lexical = engine._word_shares(snap, q, dense, keyword)  # noqa: SLF001
            fuse(dense, keyword, coverage=coverage, lexical=lexical)
        t4 = time.perf_counter()
        results = engine._results(snap, dense[:30] + keyword[:10])  # noqa: SLF001 - the engine's own step
        t5 = time.perf_counter()
        terms = query_terms(q)
        bounds = snap.passages.word_bounds([r.passage_id for r in results[:10]])
        for r in results[:10]:
            highlight_spans(r.text, terms, bounds.get(r.passage_id))
        t6 = time.perf_counter()
        steps = (t1 - t0, t2 - t1, t3 - t2, t3s - t3, t4 - t3s, t5 - t4, t6 - t5, total)
        for key, value in zip(parts, steps, strict=True):
            parts[key].append(value)
    return {k: statistics.median(v) * 1e3 for k, v in parts.items()}


def profile(folder: Path, queries: list[str]) -> str:
    """The pyinstrument tree of hybrid searches in process (empty when pyinstrument is missing)."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return ""
    from search.engine import Engine

    engine = Engine(folder)
    engine._answers = type(engine._answers)(0)  # noqa: SLF001 - profile the work, not the cache
    engine.search("预热 查询", k=10)
    profiler = Profiler(interval=0.001)
    profiler.start()
    for q in queries:
        engine.search(q, k=10, mode="hybrid")
    profiler.stop()
    return profiler.output_text(unicode=False, color=False)


def help_time(runs: int = 15) -> dict[str, float]:
    """Median seconds of `semsearch --help` and of a bare interpreter start, interleaved run by run."""
    script = Path(sys.executable).parent / "semsearch"
    cli = [str(script), "--help"] if script.exists() else [sys.executable, "-m", "api.cli", "--help"]
    timings: dict[str, list[float]] = {"help": [], "python": []}
    for _ in range(runs):
        for key, cmd in (("help", cli), ("python", [sys.executable, "-c", "pass"])):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
            timings[key].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in timings.items()}


# --- main ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="distinct queries for one client, per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --queries for one client")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--concurrent-queries", type=int, default=320)
    parser.add_argument("--backends", nargs="+", default=["torch", "torch:1", "onnx"],
                        help="query embedding backends to time, each in its own server start; "
                        "NAME:N runs the server with SEMSEARCH_THREADS=N (torch threads)")
    parser.add_argument("--questions", default="cmrc2018-dev", metavar="SET",
                        help="the eval set whose questions are asked (xquad/en2zh: English questions over "
                             "this Chinese index, which the query tower embeds)")
    parser.add_argument("--index", type=Path, help="reuse (or keep) the index in this folder")
    parser.add_argument("--build-only", action="store_true", help="build the --index folder and stop")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    command = "python bench/query_latency.py " + " ".join(sys.argv[1:] if argv is None else argv)

    folder = args.index or Path(tempfile.mkdtemp(prefix="semsearch-latency-"))
    built: dict[str, Any] = {}
    from index.generations import IndexDir

    if IndexDir(folder).current() is None:
        print(f"building {args.passages} passages in {folder}", file=sys.stderr, flush=True)
        built = build_index(folder, args.passages, args.backends[0])
        print(f"built: {built}", file=sys.stderr, flush=True)
        (folder / "bench-build.json").write_text(json.dumps(built))
    elif (folder / "bench-build.json").exists():
        built = json.loads((folder / "bench-build.json").read_text())
    if args.build_only:
        return 0
    manifest = IndexDir(folder).manifest()
    asked = EVAL.parent / args.questions / "queries.jsonl"
    questions = [json.loads(line)["question"] for line in asked.read_text().splitlines()]
    random.Random(5).shuffle(questions)
    need = args.queries * args.rounds + args.concurrent_queries
    if need > len(questions):
        parser.error(f"--queries x --rounds + --concurrent-queries = {need}: "
                     f"{args.questions} has {len(questions)} questions")
    rounds = [questions[i * args.queries : (i + 1) * args.queries] for i in range(args.rounds)]
    single = rounds[0]
    many = questions[args.queries * args.rounds : need]

    rows = []
    for backend in args.backends:
        set_backend(folder, backend.partition(":")[0])
        try:
            rows.append(serve_and_time(folder, backend, rounds, many, args.clients))
        except Exception as exc:  # a backend that cannot load (not installed here) is reported, not fatal
            rows.append({"backend": backend, "error": f"{type(exc).__name__}: {exc}"})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    parts = {}
    for spec in [r["backend"] for r in rows if "error" not in r]:
        backend, _, threads = spec.partition(":")
        set_backend(folder, backend)
        if backend == "torch":  # NAME:N in process: the same torch thread count as that server had
            import torch

            torch.set_num_threads(int(threads or os.environ.get("SEMSEARCH_THREADS") or os.cpu_count() or 1))
        parts[spec] = breakdown(folder, single[:60], backend)
    set_backend(folder, args.backends[0].partition(":")[0])
    tree = profile(folder, single[:40])
    startup = help_time()
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "parts": parts, "built": built}, indent=1))
    text = report(rows, parts, tree, manifest, built, args, command, startup)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    if not args.index:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def serve_and_time(
    folder: Path, backend: str, rounds: list[list[str]], many: list[str], clients: int
) -> dict[str, Any]:
    """One server start: one client for each round, then `clients` concurrent clients, then one repeated
    query."""
    import httpx

    server = Server(folder, backend.partition(":")[2] or None)
    try:
        server.wait()
        print(f"[{backend}] one client", file=sys.stderr, flush=True)
        cpu0 = server.cpu_seconds()
        per_round = [one_client(server.url, queries) for queries in rounds]
        # CPU per request: what a request costs whatever else runs on the machine (warm-ups included).
        requests = sum(len(queries) + 5 for queries in rounds)
        cpu_ms = (server.cpu_seconds() - cpu0) / requests * 1e3
        print(f"[{backend}] {clients} clients", file=sys.stderr, flush=True)
        conc = concurrent_clients(server.url, many, clients)
        with httpx.Client() as client:
            repeated = [
                timed_get(client, server.url + "/search", {"q": rounds[0][0], "mode": "hybrid", "k": 10})
                for _ in range(100)
            ]
    finally:
        server.stop()
    return {
        "backend": backend, "p50_ms": float(np.median([percentile(t, 50) for t in per_round])),
        "round_p50_ms": [percentile(t, 50) for t in per_round],
        "p95_ms": percentile([x for t in per_round for x in t], 95),
        "cpu_ms": cpu_ms, "concurrent": conc, "cached_p50_ms": percentile(repeated[1:], 50),
        "cached_p95_ms": percentile(repeated[1:], 95),
    }


def report(
    rows: list[dict[str, Any]], parts: dict[str, dict[str, float]], tree: str, manifest: Manifest,
    built: dict[str, Any], args: argparse.Namespace, command: str, startup: dict[str, float],
) -> str:
    layout = manifest.vector_index or {}
    desc = layout.get("kind", "flat")
    if desc == "ivf":
        desc += f" {layout.get('codec')}, nlist {layout.get('nlist')}, nprobe {layout.get('nprobe')}"
    lines = [SECTION, "", *header(command), ""]
    lines += [
        f"`GET /search?mode=hybrid&k=10` against `python -m api.cli serve` on loopback; index of "
        f"{manifest.passages:,} passages ({manifest.documents:,} documents assembled from cmrc2018-dev "
        f"sentences; BM25 on the real text; vector index: {desc}; "
        + (f"{layout['sentences']:,} sentence vectors" if layout.get("sentences") else "no sentence vectors")
        + "). **Passage and sentence vectors come from a stub "
        "embedder** (synthetic, e5-shaped: see `bench/query_latency.py`); queries are embedded by the real "
        f"model in the server. Distinct {args.questions} questions (each round its own), so the answer "
        "cache does not help except in the repeated-query column."
        + (f" Index build: {built['seconds']:.0f} s." if built else ""),
        "",
        f"| query backend | 1 client p50 (median of {args.rounds} rounds; their range) / p95 (ms) "
        f"| server CPU per request (ms) "
        f"| {args.clients} clients: requests/s | "
        f"{args.clients} clients p50 / p95 (ms) | repeated query (cache) p50 / p95 (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['backend']} | could not run: {r['error'][:100]} | | | | |")
            continue
        c = r["concurrent"]
        lines.append(
            f"| {r['backend']} | {r['p50_ms']:.1f} "
            f"({min(r['round_p50_ms']):.1f}-{max(r['round_p50_ms']):.1f}) "
            f"/ {r['p95_ms']:.1f} | {r['cpu_ms']:.1f} | {c['rps']:.1f} "
            f"| {c['p50_ms']:.1f} / {c['p95_ms']:.1f} | {r['cached_p50_ms']:.2f} / {r['cached_p95_ms']:.2f} |"
        )
    lines += [
        "",
        "Where a hybrid search spends its time, in process (median ms over 60 questions; each part timed "
        "alone around the engine's own calls, after `total`, a full uncached `Engine.search` of the question "
        "(so the parts find its posting lists warm and need not add up to it); `torch:1` is "
        "torch with one thread, as `SEMSEARCH_THREADS=1` sets it):",
        "",
        "| query backend | embed query | dense search (100) | BM25 (100) | sentence evidence (200) "
        "| word shares + fusion (200) | passage lookup | highlight (10) | total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, p in parts.items():
        lines.append(
            f"| {backend} | {p['embed']:.1f} | {p['dense']:.2f} | {p['bm25']:.1f} | {p['sentences']:.2f} "
            f"| {p['fusion']:.2f} "
            f"| {p['lookup']:.1f} "
            f"| {p['highlight']:.1f} | {p['total']:.1f} |"
        )
    lines += [
        "",
        f"`semsearch --help`: {startup['help']:.2f} s median of 15 runs (a bare `python -c pass` in the same "
        f"runs: {startup['python']:.2f} s); the CLI imports no heavy library before a command runs.",
    ]
    if tree:
        keep = [line for line in tree.splitlines() if line.strip()][:45]
        lines += ["", "<details><summary>pyinstrument, 40 hybrid searches in process</summary>", "", "```",
                  *keep, "```", "", "</details>"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
