"""semsearch side by side with the usual Python recipes, on the same corpus, model and queries.

    python bench/peers.py --install          # once: the peers' own virtual environment (not the project's)
    python bench/peers.py                    # run all; writes "## Side by side" in docs/performance.md
    python bench/peers.py --docs 60 --queries 100 --no-write

Peers, each in its own process from its own venv (`--venv`, default ~/.cache/semsearch/bench/peers-venv):
- **txtai** `Embeddings` with `hybrid: true` (its BM25 and dense scores combined), content stored;
- **LangChain** FAISS vector store + `BM25Retriever` (jieba `lcut_for_search`) in an `EnsembleRetriever`
  with weights 0.5 / 0.5: the Langchain-Chatchat recipe, with its `RecursiveCharacterTextSplitter`
  (250 characters, overlap 50);
- **sentence-transformers + FAISS**: the plain script (`IndexFlatIP` over normalised vectors), same
  splitter settings;
- **semsearch** (this project, the project's venv): `IndexBuilder` then `Engine.search` in hybrid mode.

All load the same local multilingual-e5-small folder (`index.embedders.e5_model.ensure_e5_model()`,
HF_HUB_OFFLINE=1) with e5's "query: " / "passage: " prefixes, on the same documents (the first `--docs`
of cmrc2018-dev) and the same questions about them (`--queries`). Each system chunks the documents its
own way; a passage is relevant when its document is the question's (recall@5, as in
../shared/eval/README.md), so the figures stay comparable. Query latency is in process, one question at a
time, the question embedded each time (no cache can help: the questions are distinct); all systems stay
loaded and each question goes to each system in turn, so that load from other jobs falls on all alike.

The run is sequential (one system at a time) so that no system competes with another for the two cores;
keep `--docs` small enough that the whole run stays under half an hour: embedding is the cost, about
15-40 passages a second on an idle machine, several times less when the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import ROOT, header, write_section  # noqa: E402 - the sibling bench module

SECTION = "## Side by side"
EVAL = ROOT.parent / "shared" / "eval" / "cmrc2018-dev"
DEFAULT_VENV = Path.home() / ".cache" / "semsearch" / "bench" / "peers-venv"

# torch first, on its own: the CPU wheel this machine uses (a bare requirement could pull a CUDA build).
TORCH = "torch==2.13.0"
PEER_PACKAGES = [
    "txtai==9.14.0",
    "langchain-community==0.4.2",
    "langchain-classic==1.0.8",  # EnsembleRetriever lives here since LangChain 1.0
    "langchain-core==1.7.2",  # 1.8.x wants a certifi newer than the registry has
    "langchain-huggingface==1.2.3",
    "rank-bm25==0.2.2",
    "faiss-cpu==1.15.1",
    "sentence-transformers==6.2.0",
    "transformers==5.23.0",
    "jieba==0.42.1",
]
PEERS = ("semsearch", "sbert-faiss", "langchain", "txtai")


def install(venv: Path) -> None:
    """Create the peers' venv and install the pinned packages (torch first)."""
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, *PEER_PACKAGES], check=True)


# --- the peers' code, run by the peers' python ----------------------------------------------------------
PEER_SCRIPT = r'''
import json, os, sys, time
import numpy as np
job = json.load(open(sys.argv[1]))
name, model, k = job["peer"], job["model"], job["k"]
docs, queries = job["docs"], job["queries"]
os.environ["HF_HUB_OFFLINE"] = "1"

def split(text):
    """Langchain-Chatchat's splitter settings, for every peer that needs a splitter."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=250, chunk_overlap=50,
        separators=["\n\n", "\n", "。", "！", "？", "；", "，", " ", ""], keep_separator="end")
    return splitter.split_text(text)

passages = [(d["doc_id"], chunk) for d in docs for chunk in split(d["text"])]
t0 = time.perf_counter()
if name == "sbert-faiss":
    import faiss
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(model, device="cpu", local_files_only=True)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vectors = st.encode([p for _, p in passages], prompt="passage: ", batch_size=32,
                        normalize_embeddings=True, convert_to_numpy=True)
    index = faiss.IndexFlatIP(vectors.shape[1]); index.add(vectors)
    index_s = time.perf_counter() - t0
    def search(q):
        v = st.encode([q], prompt="query: ", normalize_embeddings=True, convert_to_numpy=True)
        _, ids = index.search(v, k)
        return [passages[i][0] for i in ids[0] if i >= 0]
elif name == "langchain":
    import jieba
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    emb = HuggingFaceEmbeddings(
        model_name=model, model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={"normalize_embeddings": True, "prompt": "passage: ", "batch_size": 32},
        query_encode_kwargs={"normalize_embeddings": True, "prompt": "query: "})
    jieba.initialize()
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lc_docs = [Document(page_content=p, metadata={"doc_id": d}) for d, p in passages]
    store = FAISS.from_documents(lc_docs, emb, distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT)
    bm25 = BM25Retriever.from_documents(lc_docs, preprocess_func=jieba.lcut_for_search)
    bm25.k = k
    retriever = EnsembleRetriever(
        retrievers=[bm25, store.as_retriever(search_kwargs={"k": k})], weights=[0.5, 0.5])
    index_s = time.perf_counter() - t0
    def search(q):
        return [d.metadata["doc_id"] for d in retriever.invoke(q)[:k]]
elif name == "txtai":
    from txtai import Embeddings
    emb = Embeddings({
        "path": model, "method": "sentence-transformers", "content": True, "hybrid": True,
        "instructions": {"query": "query: ", "data": "passage: "}, "batch": 32})
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb.index([{"id": str(i), "text": p, "doc_id": d} for i, (d, p) in enumerate(passages)])
    index_s = time.perf_counter() - t0
    def search(q):
        return [passages[int(r["id"])][0] for r in emb.search(q, k)]
else:
    raise SystemExit(f"unknown peer {name}")

search("预热")
print(json.dumps({"peer": name, "passages": len(passages), "load_s": load_s, "index_s": index_s}), flush=True)
for line in sys.stdin:  # one question a line, answered with its time and whether it was found
    q = json.loads(line)
    t = time.perf_counter(); found = search(q["question"]); ms = (time.perf_counter() - t) * 1e3
    print(json.dumps({"ms": ms, "hit": q["doc_id"] in found[:k]}), flush=True)
'''

SEMSEARCH_SCRIPT = r'''
import json, os, sys, tempfile, time
import numpy as np
sys.path.insert(0, sys.argv[2])
job = json.load(open(sys.argv[1]))
k = job["k"]
from index.builder import IndexBuilder
from index.config import IndexSettings
from index.documents import Document
from search.engine import Engine
settings = IndexSettings.from_env()
settings.embedder.model = job["model"]
if job.get("backend"):
    settings.embedder.backend = job["backend"]
folder = tempfile.mkdtemp(prefix="semsearch-peers-")
t0 = time.perf_counter()
builder = IndexBuilder(folder, settings)
builder.embedder.encode_queries(["预热"])
load_s = time.perf_counter() - t0
docs = [Document.from_paragraphs(d["doc_id"], d["text"].split("\n\n"), title=d["title"]) for d in job["docs"]]
t0 = time.perf_counter()
summary = builder.upsert(docs)
index_s = time.perf_counter() - t0
engine = Engine(folder)
engine._answers.size = 0  # distinct questions anyway; no cache may help
engine.search("预热", k=k)
print(json.dumps({"peer": "semsearch", "passages": summary.passages, "load_s": load_s, "index_s": index_s}),
      flush=True)
for line in sys.stdin:
    q = json.loads(line)
    t = time.perf_counter()
    r = engine.search(q["question"], k=k, mode="hybrid")
    ms = (time.perf_counter() - t) * 1e3
    # A folded near-duplicate names its other documents in also_in: the passage was found and cites them.
    shown = {d for x in r.results[:k] for d in [x.doc_id, *(a.doc_id for a in x.also_in)]}
    print(json.dumps({"ms": ms, "hit": q["doc_id"] in shown}), flush=True)
'''


def load_set(docs_limit: int, queries_limit: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The first `docs_limit` documents of cmrc2018-dev and up to `queries_limit` of their questions."""
    docs = [json.loads(line) for line in (EVAL / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = docs[:docs_limit]
    ids = {d["doc_id"] for d in docs}
    queries = [json.loads(line) for line in (EVAL / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = [q for q in queries if q["doc_id"] in ids][:queries_limit]
    return docs, queries


class Peer:
    """One system in its own process: it loads the model and indexes at start, then answers questions
    sent one a line on its standard input (so all systems stay loaded and are queried in turn)."""

    def __init__(self, peer: str, job: dict[str, Any], venv: Path, work: Path) -> None:
        self.name = peer
        job_file = work / f"{peer}.json"
        job_file.write_text(json.dumps(job | {"peer": peer}, ensure_ascii=False))
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        if peer == "semsearch":
            cmd = [sys.executable, "-c", SEMSEARCH_SCRIPT, str(job_file), str(ROOT)]
        else:
            cmd = [str(venv / "bin" / "python"), "-c", PEER_SCRIPT, str(job_file)]
        self.stderr = open(work / f"{peer}.log", "w")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, env=env, cwd=work)
        self.result: dict[str, Any] = {"peer": peer}
        self.times: list[float] = []
        self.hits = 0

    def ready(self) -> bool:
        """Wait for the index to be built; False (with the error in `result`) if the process died."""
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.proc.wait()
            self.stderr.flush()
            log = Path(self.stderr.name).read_text().strip().splitlines()
            self.result["error"] = log[-1] if log else f"exited with {self.proc.returncode}"
            print(f"[{self.name}] failed:\n" + "\n".join(log[-12:]), file=sys.stderr, flush=True)
            return False
        self.result.update(json.loads(line))
        print(json.dumps(self.result), file=sys.stderr, flush=True)
        return True

    def ask(self, question: dict[str, Any]) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(question, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        self.times.append(answer["ms"])
        self.hits += bool(answer["hit"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.stderr.close()
        if self.times:
            ms = np.asarray(self.times)
            self.result.update(p50_ms=float(np.percentile(ms, 50)), p95_ms=float(np.percentile(ms, 95)),
                               recall=self.hits / len(self.times), queries=len(self.times))


def run(peers: list[str], job: dict[str, Any], venv: Path, work: Path) -> list[dict[str, Any]]:
    """Index with each system in turn (one at a time: indexing uses both cores), then put every question
    to every system, rotating who goes first, so that load from other jobs on this shared machine falls
    on all systems alike."""
    running: list[Peer] = []
    failed: list[Peer] = []
    for name in peers:
        peer = Peer(name, job, venv, work)
        (running if peer.ready() else failed).append(peer)
    for i, question in enumerate(job["queries"]):
        for j in range(len(running)):
            running[(i + j) % len(running)].ask(question)
    for peer in running:
        peer.close()
    return [p.result for p in sorted(running + failed, key=lambda p: peers.index(p.name))]


def report(
    results: list[dict[str, Any]], docs: int, queries: int, command: str,
    when: float | None = None, load: float | None = None,
) -> str:
    ours = next((r for r in results if r["peer"] == "semsearch" and "error" not in r), None)
    lines = [SECTION, "", *header(command, when, load), ""]
    lines += [
        f"The first {docs} documents of cmrc2018-dev and {queries} of their questions; every system with "
        "the same local multilingual-e5-small folder and e5 prefixes, one after another on the same "
        "machine (see `bench/peers.py` for each recipe). Passages are each system's own chunks; recall@5 "
        "counts a question found when a top-5 passage is from its document (for semsearch, also when the "
        "passage is folded into a near-identical one that lists that document in `also_in`, as it is "
        "shown). Query latency is in process "
        "(question embedded every time; every question put to every system in turn). Ratios are "
        "semsearch's figure over the peer's (documents/s: above 1 is faster; latency: below 1 is faster). "
        "Indexing runs one system after another, so load from other jobs can favour one of them; the "
        "questions are interleaved and are the fairer comparison. semsearch's query is hybrid (embedding, "
        "FAISS, BM25) plus highlighting and near-duplicate folding: `## Query latency` shows where it "
        "spends its time.",
        "",
        "| system | passages | index (s) | passages/s | documents/s | query p50 / p95 (ms) | recall@5 "
        "| documents/s vs semsearch | p50 vs semsearch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['peer']} | failed: {r['error'][:80]} | | | | | | | |")
            continue
        rate = r["passages"] / r["index_s"] if r["index_s"] else float("nan")
        doc_rate = docs / r["index_s"] if r["index_s"] else float("nan")
        ratio_rate = ratio_p50 = "—"
        if ours is not None and r is not ours:
            ratio_rate = f"{(docs / ours['index_s']) / doc_rate:.2f}"
            ratio_p50 = f"{ours['p50_ms'] / r['p50_ms']:.2f}"
        lines.append(
            f"| {r['peer']} | {r['passages']:,} | {r['index_s']:.1f} | {rate:.2f} | {doc_rate:.2f} "
            f"| {r['p50_ms']:.1f} / {r['p95_ms']:.1f} | {r['recall']:.3f} | {ratio_rate} | {ratio_p50} |"
        )
    lines += [
        "",
        "Systems chunk differently (semsearch: up to 256 model tokens, merging short paragraphs to ~128; "
        "the others: 250 characters with 50 overlapping), so the same documents make different numbers "
        "of passages: documents/s is the like-for-like indexing rate. With this few documents every "
        "system finds nearly every question's document in its top 5: recall@5 here shows that all of them "
        "work, not which ranks best (bench/quality.py and `semsearch eval` measure quality on full sets).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--install", action="store_true", help="create / update the peers' venv and stop")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--docs", type=int, default=60, help="documents of cmrc2018-dev to index")
    parser.add_argument("--queries", type=int, default=120, help="questions about them")
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=PEERS)
    parser.add_argument("--backend", help="semsearch's embedder backend (default: the settings' default)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--from-json", type=Path, help="only write the section from figures saved by --json")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        text = report(saved["results"], saved["docs"], saved["queries"], saved["command"],
                      saved.get("started"), saved.get("load"))
        print(text)
        if not args.no_write:
            write_section(SECTION, text)
        return 0
    if args.install:
        install(args.venv)
        return 0
    if any(p != "semsearch" for p in args.peers) and not (args.venv / "bin" / "python").exists():
        print(f"no peers' venv at {args.venv}: run `python bench/peers.py --install` first", file=sys.stderr)
        return 2
    os.environ["HF_HUB_OFFLINE"] = "1"
    from index.embedders.e5_model import ensure_e5_model

    model = str(ensure_e5_model())
    docs, queries = load_set(args.docs, args.queries)
    job = {"model": model, "k": 5, "docs": docs, "queries": queries, "backend": args.backend}
    command = "python bench/peers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    started, load = time.time(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="semsearch-peers-") as work:
        results = run(args.peers, job, args.venv, Path(work))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "docs": len(docs), "queries": len(queries),
                                         "command": command, "started": started, "load": load}, indent=1))
    text = report(results, len(docs), len(queries), command, started, load)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
