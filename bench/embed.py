"""Embedding throughput, single-query latency and recall@5 of the embedder backends.

    python bench/embed.py                      # every backend; writes "## Embedding throughput" in
                                               # docs/performance.md (--no-write: print only)
    python bench/embed.py --json               # {"passages_per_s", "baseline_passages_per_s",
                                               #  "recall_at_5_delta"} of the default backend
    python bench/embed.py --sets all           # recall on every retrieval dev set, not only cmrc2018-dev

Throughput: `--n` passages of ~200 characters cut from ../shared/eval/cmrc2018-dev/corpus.jsonl (~125
model tokens of Chinese each), embedded as passages. The baseline is plain sentence-transformers float32
(`SentenceTransformer(folder).encode(texts, prompt="passage: ", batch_size=32)`) on the same folder and
the same passages, measured in the same run, interleaved with the backends run by run (the machine is
shared: ratios within one run mean more than figures across runs); the medians over `--runs` are shown.

Latency: one query at a time (`encode_queries([q])`), p50 over `--latency-queries` questions.

Recall@5: the first `--queries` questions of a set, against every document of its corpus cut into
~200-character passages, exact dot-product search; a passage is relevant when its document is the
question's `doc_id` (definitions in ../shared/eval/README.md). `recall_at_5_delta` is recall@5 of the
backend minus recall@5 of the float32 torch reference, on cmrc2018-dev.

Skips cleanly (exit 0, message on stderr) when ../shared/eval is absent. Never run by the test suite.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never reach a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from index.config import EmbedderSettings  # noqa: E402
from index.embedders.factory import BACKENDS, create_embedder  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import write_section  # noqa: E402 - the sibling bench module

EVAL = ROOT.parent / "shared" / "eval"
THROUGHPUT_SET = "cmrc2018-dev"
RETRIEVAL_SETS = ["cmrc2018-dev", "xquad/zh", "xquad/en", "xquad/en2zh", "xquad/zh2en"]
# Some sets ask in one language over the corpus of another: the parallel set that holds that corpus.
CORPUS_OF = {"xquad/en2zh": "xquad/zh", "xquad/zh2en": "xquad/en"}
PASSAGE_CHARS = 200
SECTION = "## Embedding throughput"
PERFORMANCE_MD = ROOT / "docs" / "performance.md"
REFERENCE = "torch"

# Sentence ends: CJK punctuation anywhere, Latin punctuation before white space.
_SENTENCE_END = re.compile(r"(?<=[。！？；!?])|(?<=[.!?;])\s+")


# --- data --------------------------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def split_passages(text: str, max_chars: int = PASSAGE_CHARS) -> list[str]:
    """Whole sentences packed into passages of at most `max_chars` (a longer sentence is cut)."""
    passages: list[str] = []
    current = ""
    for sentence in filter(None, (s.strip() for s in _SENTENCE_END.split(text))):
        while len(sentence) > max_chars:
            if current:
                passages.append(current)
                current = ""
            passages.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if current and len(current) + len(sentence) > max_chars:
            passages.append(current)
            current = ""
        current += sentence if not current or not current[-1].isascii() else " " + sentence
    if current:
        passages.append(current)
    return passages


def corpus_passages(folder: Path) -> tuple[list[str], list[str]]:
    """Every document of a set cut into passages: (texts, doc_id of each)."""
    texts: list[str] = []
    doc_ids: list[str] = []
    for doc in read_jsonl(folder / "corpus.jsonl"):
        for passage in split_passages(doc["text"]):
            texts.append(passage)
            doc_ids.append(doc["doc_id"])
    return texts, doc_ids


def throughput_passages(n: int) -> list[str]:
    """`n` passages of 150-250 characters (~125 model tokens for Chinese), in corpus order."""
    texts, _ = corpus_passages(EVAL / THROUGHPUT_SET)
    chosen = [t for t in texts if 150 <= len(t) <= 250]
    return [chosen[i % len(chosen)] for i in range(n)]


# --- measuring ---------------------------------------------------------------------------------------
def passages_per_s(encode: Callable[[list[str]], Any], texts: list[str]) -> float:
    started = time.perf_counter()
    encode(texts)
    return len(texts) / (time.perf_counter() - started)


def latency_p50_ms(encode_one: Callable[[str], Any], queries: Sequence[str]) -> float:
    for q in queries[:3]:  # warm-up: first calls allocate buffers
        encode_one(q)
    times = []
    for q in queries:
        started = time.perf_counter()
        encode_one(q)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def recall_at_5(
    passage_vecs: np.ndarray, passage_docs: np.ndarray, query_vecs: np.ndarray, query_docs: np.ndarray
) -> float:
    scores = query_vecs @ passage_vecs.T
    top = np.argpartition(-scores, 5, axis=1)[:, :5]
    hits = (passage_docs[top] == query_docs[:, None]).any(axis=1)
    return float(hits.mean())


class Backends:
    """Loads each backend once and keeps its passage vectors per corpus (two sets share a corpus)."""

    def __init__(self) -> None:
        self.embedders: dict[str, Any] = {}
        self.load_s: dict[str, float] = {}
        self._vectors: dict[tuple[str, str], np.ndarray] = {}

    def get(self, backend: str) -> Any:
        if backend not in self.embedders:
            started = time.perf_counter()
            self.embedders[backend] = create_embedder(EmbedderSettings(backend=backend))
            self.load_s[backend] = time.perf_counter() - started
        return self.embedders[backend]

    def recall(self, backend: str, name: str, limit: int) -> float:
        folder = EVAL / name
        corpus = CORPUS_OF.get(name, name)
        texts, docs = corpus_passages(EVAL / corpus)
        embedder = self.get(backend)
        key = (backend, corpus)
        if key not in self._vectors:
            self._vectors[key] = embedder.encode_passages(texts)
        queries = read_jsonl(folder / "queries.jsonl")[:limit]
        q_vecs = embedder.encode_queries([q["question"] for q in queries])
        return recall_at_5(
            self._vectors[key], np.array(docs), q_vecs, np.array([q["doc_id"] for q in queries])
        )


def measure_throughput(
    backends: Backends, names: Sequence[str], texts: list[str], runs: int, baseline: Any
) -> dict[str, list[float]]:
    """Passages/s of the baseline and each backend, interleaved run by run."""
    encoders: dict[str, Callable[[list[str]], Any]] = {
        "baseline": lambda t: baseline.encode(
            t,
            prompt="passage: ",
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    }
    for name in names:
        encoders[name] = backends.get(name).encode_passages
    for encode in encoders.values():
        encode(texts[:32])  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in encoders}
    for run in range(runs):
        for name, encode in encoders.items():
            rates[name].append(passages_per_s(encode, texts))
            logging.info("run %d %s: %.1f passages/s", run + 1, name, rates[name][-1])
    return rates


# --- docs/performance.md -----------------------------------------------------------------------------
def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def report(result: dict[str, Any], command: str, default_backend: str) -> str:
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " + uncommitted changes"
    rates, runs = result["throughput"], result["runs"]
    base = statistics.median(rates["baseline"])
    lines = [
        SECTION,
        "",
        f"Run {result['date']}, commit {commit}, {os.cpu_count()} cores, load average "
        f"{result['load']:.1f} at the start (a shared machine: compare figures within one run).",
        "",
        f"    {command}",
        "",
        f"{result['n']} passages of 150-250 characters from cmrc2018-dev (mean {result['mean_tokens']:.0f} "
        f"model tokens with the prompt), embedded as passages; median of {runs} interleaved runs. Baseline: "
        "plain `SentenceTransformer(folder).encode(..., batch_size=32)` float32. Query latency: one query "
        f"at a time, p50 of {result['latency_queries']}. Default backend: `{default_backend}`.",
        "",
        "| backend | passages/s | × baseline (median of per-run ratios) | query p50 ms | load s |",
        "|---|---|---|---|---|",
    ]
    for name, latency in result["latency"].items():
        values = rates.get(name)
        if values:
            ratio = statistics.median(v / b for v, b in zip(values, rates["baseline"], strict=True))
            speed = f"{statistics.median(values):.1f} | {ratio:.2f}"
        else:  # torch: the baseline's model, its throughput is the baseline's
            speed = "(as baseline) | (1.00)"
        load = "" if name == "baseline" else f"{result['load_s'].get(name, float('nan')):.1f}"
        label = "sentence-transformers (baseline)" if name == "baseline" else f"`{name}`"
        lines.append(f"| {label} | {speed} | {latency:.1f} | {load} |")
    lines += [
        "",
        f"Baseline {base:.1f} passages/s. `load s` is the time to create the embedder in this run (the ONNX "
        "export runs once per model folder and is cached: see below).",
        "",
        f"Recall@5 (first {result['queries']} questions of each set, ~200-character passages of the whole "
        f"corpus, exact search; Δ in points against `{result['reference']}` float32):",
        "",
        "| set | " + " | ".join(f"`{b}`" for b in result["recall_backends"]) + " |",
        "|---|" + "---|" * len(result["recall_backends"]),
    ]
    for name, row in result["recall"].items():
        ref = row[result["reference"]]
        cells = []
        for b in result["recall_backends"]:
            cells.append(
                f"{row[b]:.3f}" if b == result["reference"] else f"{row[b]:.3f} ({(row[b] - ref) * 100:+.1f})"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + result.get("notes", "")


NOTES = """
How the backends are made (`index/embedders/onnx.py`): the sentence-transformers folder's transformer is
exported once with `torch.onnx.export` (eager attention), onnxruntime's BERT fusions are applied
(Attention, SkipLayerNormalization, BiasGelu, EmbedLayerNormalization) → `onnx/float32.onnx` beside the
model; `onnx-int8` is `quantize_dynamic` of that with per-channel int8 weights and reduce_range, the
attention-output and feed-forward-output products left float32 → `onnx/int8.onnx`. Each graph keeps its
weights in a `.data` file beside it, which onnxruntime maps instead of reading (a cold process touches
only the embedding rows it looks up). Both run on
onnxruntime's CPU provider with intra-op threads = cores (`SEMSEARCH_THREADS`), texts sorted by token
length and batched by a budget of 4096 padded tokens;
mean pooling and L2 normalisation in numpy. Export of float32 plus quantisation takes about 1-2 minutes
once per model folder (longer on a loaded machine); it is cached and reused after that.
"""


# --- main --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    default_backend = EmbedderSettings().backend
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=512, help="passages for throughput (default %(default)s)")
    parser.add_argument(
        "--queries", type=int, default=500, help="questions per recall set (default %(default)s)"
    )
    parser.add_argument(
        "--backend",
        default=default_backend,
        choices=BACKENDS,
        help="the backend of --json (default: the configured default, %(default)s)",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="interleaved throughput runs (default %(default)s)"
    )
    parser.add_argument("--latency-queries", type=int, default=50)
    parser.add_argument(
        "--sets", nargs="*", default=[THROUGHPUT_SET], help="recall sets, or 'all' (default: %(default)s)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print only the three figures of --backend, as JSON"
    )
    parser.add_argument(
        "--recall-backends",
        nargs="*",
        default=["onnx-int8"],
        choices=BACKENDS,
        help="backends whose recall is measured besides torch (default: %(default)s; onnx float32 agrees "
        "with torch at cosine >= 0.9999, so its recall is the same)",
    )
    parser.add_argument(
        "--reference",
        default=REFERENCE,
        choices=("torch", "onnx"),
        help="the float32 backend that recall is compared with (default %(default)s; onnx is the same "
        "float32 model, cosine >= 0.9999 to torch, and faster on a busy machine)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not edit docs/performance.md")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.json else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(message)s",
    )
    if not (EVAL / THROUGHPUT_SET / "corpus.jsonl").exists():
        print(f"no development sets at {EVAL}; nothing to measure", file=sys.stderr)
        return 0
    sets = RETRIEVAL_SETS if args.sets == ["all"] else args.sets
    # The torch backend is the baseline's model plus length sorting: its throughput is not measured again.
    names = [args.backend] if args.json else [b for b in BACKENDS if b != REFERENCE]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    from sentence_transformers import SentenceTransformer

    from index.embedders.sbert import resolve_model_path

    folder = resolve_model_path(EmbedderSettings().model)
    baseline = SentenceTransformer(folder, device="cpu", local_files_only=True)
    backends = Backends()
    texts = throughput_passages(args.n)
    rates = measure_throughput(backends, names, texts, args.runs, baseline)

    reference = args.reference
    recall_backends = [reference] + [
        b for b in ([args.backend] if args.json else args.recall_backends) if b != reference
    ]
    recall: dict[str, dict[str, float]] = {}
    for name in sets:
        recall[name] = {b: backends.recall(b, name, args.queries) for b in recall_backends}
        logging.info("recall@5 %s: %s", name, recall[name])

    if args.json:
        delta = recall[sets[0]][args.backend] - recall[sets[0]][reference]
        print(
            json.dumps(
                {
                    "passages_per_s": round(statistics.median(rates[args.backend]), 2),
                    "baseline_passages_per_s": round(statistics.median(rates["baseline"]), 2),
                    "recall_at_5_delta": round(delta, 4),
                }
            )
        )
        return 0

    questions = [q["question"] for q in read_jsonl(EVAL / THROUGHPUT_SET / "queries.jsonl")]
    questions = questions[: args.latency_queries]
    latency = {"baseline": latency_p50_ms(lambda q: baseline.encode([q], prompt="query: "), questions)}
    for name in [*names, REFERENCE]:
        embedder = backends.get(name)
        latency[name] = latency_p50_ms(lambda q, e=embedder: e.encode_queries([q]), questions)
    tokens = backends.get(names[0]).count_tokens(["passage: " + t for t in texts])
    result = {
        "date": date,
        "load": load,
        "n": args.n,
        "runs": args.runs,
        "queries": args.queries,
        "latency_queries": len(questions),
        "throughput": rates,
        "latency": latency,
        "load_s": backends.load_s,
        "recall": recall,
        "reference": reference,
        "recall_backends": recall_backends,
        "mean_tokens": float(np.mean(tokens)) + 2,
        "notes": NOTES,
    }
    command = "python bench/embed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(result, command.strip(), default_backend)
    print(text)
    print(json.dumps({k: v for k, v in result.items() if k != "notes"}, indent=1))
    if not args.no_write:
        write_section(SECTION, text)
        print(f"wrote {SECTION!r} in {PERFORMANCE_MD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
