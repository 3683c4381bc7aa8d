"""`semsearch eval`: retrieval (and answer) quality on a development set, with the figures defined in
`../shared/eval/README.md`, so every number in `docs/` means the same thing.

A set folder holds `corpus.jsonl` (documents), `queries.jsonl` (questions with the answering `doc_id` or
`doc_ids`, gold `answers`, and `exclude_doc_ids` to drop from the ranking) and/or `pairs.jsonl`
(`text_a`, `text_b`, `label`, scored by Spearman correlation with the cosine).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from index import settings
from index.backends import IndexLocation, StoreConfig, open_index
from index.builder import IndexBuilder
from index.config import IndexSettings
from index.embedders.base import Embedder
from index.embedders.factory import create_embedder
from index.embedding_cache import FILE as EMBEDDINGS_FILE
from index.text import is_cjk
from search.engine import Engine

ANSWER_KEYS = ("answer_hit", "em", "f1", "withheld")
RETRIEVAL_KEYS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer@1", "answer@5", "queries")
TIMING_KEYS = ("index_passages_per_s", "query_ms_p50", "query_ms_p95")


def eval_cache_dir() -> Path:
    return settings.cache_dir() / "eval"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def eval_index(
    folder: Path, settings: IndexSettings, *, progress: bool = False, store: StoreConfig | None = None
) -> tuple[Path | IndexLocation, float]:
    """The index of `folder/corpus.jsonl` under these settings, built once and reused.

    Returns the index (a folder, or with a non-folder `store` its collection `COLLECTION_<set>_<digest>`)
    and the passages/s of the build that embedded it (recorded beside it, so a reused index still reports
    the throughput it was built at).
    """
    corpus = folder / "corpus.jsonl"
    digest = _digest(corpus, settings)
    target = eval_cache_dir() / f"{folder.name}-{digest.hexdigest()[:16]}"
    stats = target / "build.json"
    if store is not None and store.store != "faiss":
        name = re.sub(r"\W", "_", f"{store.collection}_{folder.name}_{digest.hexdigest()[:12]}")
        location = open_index(replace(store, collection=name, index=target))
        summary = location.builder(settings, progress=progress).index_paths([corpus])
        if summary.embedded or not stats.exists():
            target.mkdir(parents=True, exist_ok=True)
            stats.write_text(json.dumps(summary.to_dict()))
        return location, json.loads(stats.read_text())["passages_per_s"]
    without = _digest(corpus, replace(settings, sentence_vectors=False)).hexdigest()[:16]
    plain = eval_cache_dir() / f"{folder.name}-{without}"
    if not target.exists() and (plain / EMBEDDINGS_FILE).exists():
        # The same passages with sentence vectors: their vectors are the built index's, only the
        # sentences are embedded. The throughput reported stays that build's (passages alone).
        target.mkdir(parents=True)
        shutil.copy2(plain / EMBEDDINGS_FILE, target / EMBEDDINGS_FILE)
        if (plain / "build.json").exists():
            shutil.copy2(plain / "build.json", target / "seeded-from.json")
    builder = IndexBuilder(target, settings, progress=progress)
    if stats.exists():
        built = json.loads(stats.read_text())["passages_per_s"]
        if builder.keywords_outdated():  # built by an older analyser: re-analysed, never re-embedded
            builder.index_paths([corpus])
        return target, built
    summary = builder.index_paths([corpus])
    record = summary.to_dict()
    seeded = target / "seeded-from.json"
    if seeded.exists():
        record["passages_per_s"] = json.loads(seeded.read_text())["passages_per_s"]
    stats.write_text(json.dumps(record))
    return target, record["passages_per_s"]


def _digest(corpus: Path, settings: IndexSettings) -> Any:
    """What names an eval index: its corpus and the settings it is built with. Without sentence vectors
    the digest is the one every index had before they existed, so those indexes keep serving."""
    shaped = settings.to_dict()
    if not shaped["sentence_vectors"]:
        del shaped["sentence_vectors"]
    digest = hashlib.sha256(corpus.read_bytes())
    digest.update(json.dumps(shaped, sort_keys=True).encode())
    return digest


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson correlation of the ranks (ties get their average rank)."""

    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v), dtype=np.float64)
        r[order] = np.arange(len(v), dtype=np.float64)
        for value in np.unique(v):  # average ranks of ties
            tied = v == value
            if tied.sum() > 1:
                r[tied] = r[tied].mean()
        return r

    rx, ry = ranks(np.asarray(x, dtype=np.float64)), ranks(np.asarray(y, dtype=np.float64))
    rx -= rx.mean()
    ry -= ry.mean()
    denom = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / denom) if denom else 0.0


def retrieval_metrics(
    engine: Engine,
    queries: list[dict[str, Any]],
    *,
    mode: str | None,
    k: int = 10,
    on_query: Callable[[dict[str, Any], list[Any]], None] | None = None,
) -> dict[str, float]:
    """recall@1/5/10, mrr@10, ndcg@10, answer@1/5 and query latency over `queries`."""
    depth = max(k, 10)
    sums = dict.fromkeys(RETRIEVAL_KEYS[:-1], 0.0)
    latencies = []
    for q in queries:
        relevant = set(q.get("doc_ids") or [q["doc_id"]])
        exclude = set(q.get("exclude_doc_ids") or [])
        started = time.perf_counter()
        results = engine.search(q["question"], k=min(100, depth + len(exclude) * 2), mode=mode).results
        latencies.append((time.perf_counter() - started) * 1000)
        # A result stands for its document and the near-duplicates folded into it: it is dropped only
        # when all of them are excluded (a paraphrase folded into the query's own sentence still counts).
        results = [r for r in results if doc_ids_of(r) - exclude][:depth]
        if on_query is not None:
            on_query(q, results)
        ranks = [i + 1 for i, r in enumerate(results) if r.doc_id in relevant or relevant & doc_ids_of(r)]
        first = ranks[0] if ranks else None
        for n in (1, 5, 10):
            sums[f"recall@{n}"] += 1.0 if first is not None and first <= n else 0.0
        sums["mrr@10"] += 1.0 / first if first is not None and first <= 10 else 0.0
        sums["ndcg@10"] += ndcg(results[:10], relevant)
        answers = [a for a in q.get("answers", []) if a]
        for n in (1, 5):
            hit = any(a in r.text for r in results[:n] for a in answers)
            sums[f"answer@{n}"] += 1.0 if hit else 0.0
    n = max(1, len(queries))
    out = {key: round(value / n, 4) for key, value in sums.items()}
    out["queries"] = len(queries)
    out["query_ms_p50"] = round(float(np.percentile(latencies, 50)), 2) if latencies else 0.0
    out["query_ms_p95"] = round(float(np.percentile(latencies, 95)), 2) if latencies else 0.0
    return out


def doc_ids_of(result: Any) -> set[str]:
    """The document of a result and of the near-duplicates folded into it (they answer as well)."""
    return {result.doc_id, *(a.doc_id for a in result.also_in)}


def ndcg(results: list[Any], relevant: set[str]) -> float:
    """Binary gain by document: each relevant document counts once, at its best rank."""
    seen: set[str] = set()
    dcg = 0.0
    for i, r in enumerate(results):
        for doc in doc_ids_of(r) & relevant:
            if doc not in seen:
                seen.add(doc)
                dcg += 1.0 / math.log2(i + 2)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), len(results) or 10)))
    return dcg / ideal if ideal else 0.0


def pair_spearman(embedder: Embedder, pairs: list[dict[str, Any]]) -> float:
    """Spearman between the cosine of each pair (both sides embedded alike) and its label."""
    embed = embedder.encode_queries  # a symmetric task: the same prompt on both sides
    a = embed([p["text_a"] for p in pairs])
    b = embed([p["text_b"] for p in pairs])
    cosines = (a * b).sum(axis=1)
    return round(spearman(cosines, np.asarray([float(p["label"]) for p in pairs])), 4)


# --- answers ----------------------------------------------------------------------------------------
# CMRC 2018's official evaluation (cmrc2018_evaluate.py): punctuation, Chinese and English, and white
# space are removed; CJK characters count one by one, runs of Latin letters and digits as one token; F1 is
# computed from the longest common substring of the token lists; each figure is the best over the golds.
_CMRC_PUNCTUATION = frozenset(
    "-:_*^/\\~`+=，。：？！“”；’《》……·、「」（）－～『』｛｝【】〔〕〈〉"
    "!\"#$&'()*,.;<>?@[]{|}"
)  # not %: "3%" and "3" are different answers


def _cmrc_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    word = ""
    for char in text.lower().strip():
        if char.isspace() or char in _CMRC_PUNCTUATION:
            if word:
                tokens.append(word)
                word = ""
            continue
        if is_cjk(char) or not char.isalnum():
            if word:
                tokens.append(word)
                word = ""
            tokens.append(char)
        else:
            word += char
    if word:
        tokens.append(word)
    return tokens


def normalize_answer(text: str) -> str:
    """Lower case, without punctuation or white space: how answers are compared."""
    return "".join(_cmrc_tokens(text))


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common substring (contiguous) of two token lists."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def answer_em(prediction: str, golds: list[str]) -> float:
    pred = normalize_answer(prediction)
    return 1.0 if any(pred == normalize_answer(g) for g in golds if g) else 0.0


def answer_f1(prediction: str, golds: list[str]) -> float:
    pred = _cmrc_tokens(prediction)
    best = 0.0
    for gold in golds:
        ref = _cmrc_tokens(gold)
        common = _lcs_length(pred, ref) if pred and ref else 0
        if common:
            precision, recall = common / len(pred), common / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains_answer(text: str, golds: list[str]) -> bool:
    """Whether `text` contains one of the gold answers (normalised alike): answer_hit."""
    flat = normalize_answer(text)
    return any(g and normalize_answer(g) in flat for g in golds if normalize_answer(g))


RELIABILITY_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)


def answer_metrics(
    engine: Engine,
    queries: list[dict[str, Any]],
    *,
    k: int | None = None,
    threshold: float | None = None,
    on_answer: Callable[[dict[str, Any], Any, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """answer_hit, em, f1 over ALL `queries` (a withheld answer scores 0) and the withheld share, at the
    configured confidence threshold; also the same without any threshold (`*_all`), the precision of the
    answered questions, and a reliability table (mean confidence vs observed answer_hit per bin).

    em and f1 score `answer_span` when the answer has one, else the whole answer sentence.
    """
    from search.answer import DEFAULT_K, threshold_from_env

    k = k or DEFAULT_K
    threshold = threshold_from_env() if threshold is None else threshold
    sums = dict.fromkeys(("answer_hit", "em", "f1", "withheld", "answer_hit_all", "em_all", "f1_all"), 0.0)
    confidences: list[float] = []
    hits: list[float] = []
    for q in queries:
        answers = [a for a in q.get("answers", []) if a]
        # Threshold 0: the best sentence is always returned, so the figures without a threshold and the
        # reliability table come from the same run; the threshold is applied below.
        response = engine.ask(q["question"], k=k, threshold=0.0)
        scores = {"answer_hit": 0.0, "em": 0.0, "f1": 0.0}
        if response.answer is not None:
            span = response.answer_span
            predicted = response.answer[span[0] : span[1]] if span else response.answer
            scores = {
                "answer_hit": 1.0 if contains_answer(response.answer, answers) else 0.0,
                "em": answer_em(predicted, answers),
                "f1": answer_f1(predicted, answers),
            }
        conf = float(response.confidence or 0.0)
        answered = response.answer is not None and conf >= threshold
        for key, value in scores.items():
            sums[f"{key}_all"] += value
            sums[key] += value if answered else 0.0
        sums["withheld"] += 0.0 if answered else 1.0
        confidences.append(conf)
        hits.append(scores["answer_hit"])
        if on_answer is not None:
            on_answer(q, response, {**scores, "answered": float(answered)})
    n = max(1, len(queries))
    out: dict[str, Any] = {key: round(value / n, 4) for key, value in sums.items()}
    answered = [h for c, h in zip(confidences, hits, strict=True) if c >= threshold]
    out["precision_answered"] = round(sum(answered) / len(answered), 4) if answered else 0.0
    out["threshold"] = threshold
    out["reliability"] = reliability_table(confidences, hits)
    return out


def reliability_table(confidences: list[float], hits: list[float]) -> list[dict[str, float]]:
    """Per confidence bin: how many answers, their mean confidence, and the share that were right."""
    conf, hit = np.asarray(confidences, dtype=np.float64), np.asarray(hits, dtype=np.float64)
    rows = []
    for lo, hi in zip(RELIABILITY_BINS, RELIABILITY_BINS[1:], strict=False):
        inside = (conf >= lo) & (conf < hi)
        if inside.any():
            rows.append({
                "bin": f"{lo:.1f}-{min(hi, 1.0):.1f}",
                "n": int(inside.sum()),
                "predicted": round(float(conf[inside].mean()), 3),
                "observed": round(float(hit[inside].mean()), 3),
            })
    return rows


def evaluate(
    folder: Path,
    *,
    mode: str | None = None,
    k: int = 10,
    limit: int | None = None,
    settings: IndexSettings | None = None,
    progress: bool = False,
    answers: bool = False,
    skip: int = 0,
    store: StoreConfig | None = None,
) -> dict[str, Any]:
    """All figures for one set folder, with exactly the keys the README of the sets defines.

    `answers` adds answer_hit, em, f1 and withheld (`answer_metrics`); `skip` leaves out the first
    queries (the slice the answer model was fitted on: `--skip 300` for cmrc2018-dev).
    """
    folder = Path(folder)
    has_queries = (folder / "queries.jsonl").exists() and (folder / "corpus.jsonl").exists()
    has_pairs = (folder / "pairs.jsonl").exists()
    if not has_queries and not has_pairs:
        raise FileNotFoundError(f"{folder} has neither corpus.jsonl + queries.jsonl nor pairs.jsonl")
    settings = settings or IndexSettings.from_env()
    out: dict[str, Any] = {}
    if has_queries:
        index_dir, rate = eval_index(folder, settings, progress=progress, store=store)
        engine = Engine.open(index_dir)
        queries = read_jsonl(folder / "queries.jsonl")[skip:]
        queries = queries[:limit] if limit is not None else queries
        metrics = retrieval_metrics(engine, queries, mode=mode, k=k)
        out.update({key: metrics[key] for key in RETRIEVAL_KEYS})
        out["index_passages_per_s"] = round(rate, 2)
        out["query_ms_p50"] = metrics["query_ms_p50"]
        out["query_ms_p95"] = metrics["query_ms_p95"]
        if answers:
            out.update(answer_metrics(engine, queries))
    if has_pairs:
        pairs = read_jsonl(folder / "pairs.jsonl")[:limit]
        out["spearman"] = pair_spearman(create_embedder(settings.embedder), pairs)
    return out
