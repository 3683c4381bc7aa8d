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
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from index.builder import IndexBuilder
from index.config import IndexSettings
from index.embedders.base import Embedder
from index.embedders.factory import create_embedder
from search.engine import Engine

RETRIEVAL_KEYS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer@1", "answer@5", "queries")
TIMING_KEYS = ("index_passages_per_s", "query_ms_p50", "query_ms_p95")


def eval_cache_dir() -> Path:
    base = os.environ.get("SEMSEARCH_CACHE") or Path.home() / ".cache" / "semsearch"
    return Path(base) / "eval"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def eval_index(folder: Path, settings: IndexSettings, *, progress: bool = False) -> tuple[Path, float]:
    """The index of `folder/corpus.jsonl` under these settings, built once and reused.

    Returns the index folder and the passages/s of the build that embedded it (recorded beside it, so a
    reused index still reports the throughput it was built at).
    """
    corpus = folder / "corpus.jsonl"
    digest = hashlib.sha256(corpus.read_bytes())
    digest.update(json.dumps(settings.to_dict(), sort_keys=True).encode())
    target = eval_cache_dir() / f"{folder.name}-{digest.hexdigest()[:16]}"
    stats = target / "build.json"
    if stats.exists():
        return target, json.loads(stats.read_text())["passages_per_s"]
    summary = IndexBuilder(target, settings, progress=progress).index_paths([corpus])
    stats.write_text(json.dumps(summary.to_dict()))
    return target, summary.passages_per_s


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
        results = [r for r in results if r.doc_id not in exclude][:depth]
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


def evaluate(
    folder: Path,
    *,
    mode: str | None = None,
    k: int = 10,
    limit: int | None = None,
    settings: IndexSettings | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """All figures for one set folder, with exactly the keys the README of the sets defines."""
    folder = Path(folder)
    has_queries = (folder / "queries.jsonl").exists() and (folder / "corpus.jsonl").exists()
    has_pairs = (folder / "pairs.jsonl").exists()
    if not has_queries and not has_pairs:
        raise FileNotFoundError(f"{folder} has neither corpus.jsonl + queries.jsonl nor pairs.jsonl")
    settings = settings or IndexSettings.from_env()
    out: dict[str, Any] = {}
    if has_queries:
        index_dir, rate = eval_index(folder, settings, progress=progress)
        engine = Engine.open(index_dir)
        queries = read_jsonl(folder / "queries.jsonl")[:limit]
        metrics = retrieval_metrics(engine, queries, mode=mode, k=k)
        out.update({key: metrics[key] for key in RETRIEVAL_KEYS})
        out["index_passages_per_s"] = round(rate, 2)
        out["query_ms_p50"] = metrics["query_ms_p50"]
        out["query_ms_p95"] = metrics["query_ms_p95"]
    if has_pairs:
        pairs = read_jsonl(folder / "pairs.jsonl")[:limit]
        out["spearman"] = pair_spearman(create_embedder(settings.embedder), pairs)
    return out
