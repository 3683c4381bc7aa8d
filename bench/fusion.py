"""Fusion methods for hybrid search, compared offline on the development sets.

    python bench/fusion.py                    # every retrieval set → docs/fusion.md (lists are cached)
    python bench/fusion.py --sets cmrc2018-dev xquad/en2zh --no-write

For each query of a set, the dense and the keyword top-100 (ids and scores), the keyword list's
coverage of the query's words (`search.hybrid.keyword_weight`) and each candidate's idf-weighted share
of the query's words (`search.hybrid.word_shares`) are collected once through the engine,
over the same cached index `semsearch eval` uses. Fusion formulas are then scored on those lists in
numpy: recall@5 at document level (definitions in ../shared/eval/README.md), without near-duplicate
folding, so the figures are a little below `semsearch eval`'s; they are for comparing methods.
"""

from __future__ import annotations

import argparse
import datetime as dt
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import IndexSettings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import commit  # noqa: E402 - the sibling bench module

EVAL = ROOT.parent / "shared" / "eval"
SETS = ["cmrc2018-dev", "xquad/zh", "xquad/en", "xquad/en2zh", "xquad/zh2en", "sts/PAWSX"]
DEPTH = 100
CACHE = Path.home() / ".cache" / "semsearch" / "fusion"
CACHE_VERSION = "v3"  # v3: with each candidate's idf-weighted word share


def collect(name: str, settings: IndexSettings) -> list[dict]:
    """Per query: dense and keyword lists as document ids and scores, the coverage, each candidate's word
    share (idf-weighted, and counted), the relevant docs."""
    from index.analysis import query_words
    from search.engine import HYBRID_DEPTH, Engine
    from search.evaluate import eval_index, read_jsonl
    from search.hybrid import dense_hits, keyword_hits

    index_dir, _ = eval_index(EVAL / name, settings)
    cache = CACHE / f"{index_dir.name}-{CACHE_VERSION}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    engine = Engine.open(index_dir)
    snap = engine.snapshot()
    assert snap.keywords is not None
    doc_of: dict[int, str] = {}
    rows = []
    for q in read_jsonl(EVAL / name / "queries.jsonl"):
        vector = engine._query_vector(q["question"])
        dense = dense_hits(*(a[0] for a in snap.vectors.search(vector, HYBRID_DEPTH, None)))
        keyword = keyword_hits(*snap.keywords.search(q["question"], HYBRID_DEPTH, None))
        ids = [h.passage_id for h in dense + keyword if h.passage_id not in doc_of]
        doc_of.update({pid: row.doc_id for pid, row in snap.passages.passages(ids).items()})
        coverage, shares = engine._word_shares(snap, q["question"], dense, keyword)
        words = list(query_words(q["question"]))
        found = snap.keywords.matched_terms(words, list(shares))
        rows.append({
            "dense": [(doc_of[h.passage_id], h.passage_id, h.score) for h in dense],
            "keyword": [(doc_of[h.passage_id], h.passage_id, h.score) for h in keyword],
            "coverage": coverage,
            "shares": shares,
            "counts": {pid: len(f) / len(words) for pid, f in zip(shares, found, strict=True)},
            "relevant": set(q.get("doc_ids") or [q["doc_id"]]),
            "exclude": set(q.get("exclude_doc_ids") or []),
        })
        if len(rows) % 500 == 0:
            print(f"{name}: {len(rows)} queries", file=sys.stderr, flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(rows))
    return rows


Fusion = Callable[[dict], list[str]]


def ranked_docs(scores: dict[int, float], doc_of: dict[int, str]) -> list[str]:
    return [doc_of[pid] for pid, _ in sorted(scores.items(), key=lambda kv: -kv[1])]


def rrf(scale: float = 1.0, power: float = 1.0, k: int = 60, floor: float = 0.0) -> Fusion:
    """Σ w / (k + rank); the keyword list weighted scale · max(coverage, floor) ** power."""

    def fuse(row: dict) -> list[str]:
        w = scale * max(row["coverage"], floor) ** power
        scores: dict[int, float] = {}
        doc_of = {}
        for rank, (doc, pid, _) in enumerate(row["dense"], 1):
            scores[pid] = 1.0 / (k + rank)
            doc_of[pid] = doc
        for rank, (doc, pid, _) in enumerate(row["keyword"], 1):
            scores[pid] = scores.get(pid, 0.0) + w / (k + rank)
            doc_of[pid] = doc
        return ranked_docs(scores, doc_of)

    return fuse


def convex(
    alpha: float, power: float = 1.0, by_coverage: bool = True, words: float = 0.0, idf: bool = True
) -> Fusion:
    """alpha · keyword + (1 - alpha) · dense on min-max normalised scores (a missing score counts as the
    list's minimum); with `by_coverage` alpha is scaled by coverage ** power; `words` adds that weight
    times each candidate's share of the query's words (idf-weighted, or each word counted once)."""

    def fuse(row: dict) -> list[str]:
        a = alpha * (row["coverage"] ** power if by_coverage else 1.0)
        doc_of: dict[int, str] = {}
        parts = []
        for name in ("dense", "keyword"):
            hits = row[name]
            if not hits:
                parts.append({})
                continue
            s = np.asarray([h[2] for h in hits], dtype=np.float64)
            lo, hi = s.min(), s.max()
            parts.append({pid: (score - lo) / (hi - lo) if hi > lo else 1.0 for _, pid, score in hits})
            doc_of.update({pid: doc for doc, pid, _ in hits})
        dense, keyword = parts
        shares = row["shares"] if idf else row["counts"]
        scores = {
            pid: (1 - a) * dense.get(pid, 0.0) + a * keyword.get(pid, 0.0) + words * shares.get(pid, 0.0)
            for pid in set(dense) | set(keyword)
        }
        return ranked_docs(scores, doc_of)

    return fuse


def default() -> Fusion:
    """The engine's own fusion (`search.hybrid.fuse`) on the same lists."""
    from search.hybrid import Hit, fuse

    def run(row: dict) -> list[str]:
        doc_of = {pid: doc for doc, pid, _ in row["dense"] + row["keyword"]}
        dense = [Hit(pid, s, dense_score=s, dense_rank=r) for r, (_, pid, s) in enumerate(row["dense"], 1)]
        keyword = [
            Hit(pid, s, keyword_score=s, keyword_rank=r) for r, (_, pid, s) in enumerate(row["keyword"], 1)
        ]
        fused = fuse(dense, keyword, coverage=row["coverage"], word_shares=row["shares"])
        return [doc_of[h.passage_id] for h in fused]

    return run


def single(name: str) -> Fusion:
    return lambda row: [doc for doc, _, _ in row[name]]


def recall_at(rows: list[dict], fuse: Fusion, k: int = 5) -> float:
    hits = 0
    for row in rows:
        docs = [d for d in fuse(row) if d not in row["exclude"]][:k]
        hits += any(d in row["relevant"] for d in docs)
    return hits / max(1, len(rows))


METHODS: dict[str, Fusion] = {
    "dense": single("dense"),
    "keyword": single("keyword"),
    "semsearch: convex, keyword share 0.5 × √coverage, word share 0.5 (search/hybrid.py)": default(),
    "convex 0.6 × √coverage, no word share (semsearch before)": convex(0.6, 0.5),
    **{
        f"convex {a} × √coverage, word share {w}": convex(a, 0.5, words=w)
        for a in (0.4, 0.5, 0.6)
        for w in (0.3, 0.7)
    },
    "convex 0.5 × coverage, word share 0.5": convex(0.5, 1.0, words=0.5),
    "convex 0.5 × √coverage, word share 0.5, words counted (no idf)": convex(0.5, 0.5, words=0.5, idf=False),
    "rrf, keyword weight = coverage": rrf(),
    "rrf, unweighted": rrf(floor=1.0),
    "rrf, weight = 1.5 coverage": rrf(scale=1.5),
    "rrf, weight = 2 coverage": rrf(scale=2.0),
    "rrf, weight = 2 coverage^2": rrf(scale=2.0, power=2.0),
    "rrf, weight = 3 coverage^3": rrf(scale=3.0, power=3.0),
    "rrf k=20, weight = coverage": rrf(k=20),
    "rrf k=20, weight = 2 coverage^2": rrf(scale=2.0, power=2.0, k=20),
    **{f"convex {a} × √coverage": convex(a, 0.5) for a in (0.5, 0.7)},
    **{f"convex {a} × coverage": convex(a) for a in (0.5, 0.6, 0.7, 0.8, 0.9)},
    **{f"convex {a} × coverage^2": convex(a, 2.0) for a in (0.6, 0.7, 0.8, 0.9)},
    **{f"convex {a}": convex(a, by_coverage=False) for a in (0.3, 0.4, 0.5, 0.6)},
}
TOP1_METHODS = [
    "dense",
    "keyword",
    "semsearch: convex, keyword share 0.5 × √coverage, word share 0.5 (search/hybrid.py)",
    "convex 0.6 × √coverage, no word share (semsearch before)",
    "convex 0.5 × √coverage, word share 0.5, words counted (no idf)",
]
CROSS_LINGUAL = {"xquad/en2zh", "xquad/zh2en"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="*", default=SETS)
    parser.add_argument("--no-write", action="store_true", help="print only; do not write docs/fusion.md")
    args = parser.parse_args(argv)
    if not EVAL.exists():
        print(f"no development sets at {EVAL}; nothing to measure", file=sys.stderr)
        return 0
    settings = IndexSettings.from_env()
    table = {name: collect(name, settings) for name in args.sets if (EVAL / name / "queries.jsonl").exists()}
    figures = {
        method: {name: recall_at(rows, fuse) for name, rows in table.items()}
        for method, fuse in METHODS.items()
    }
    lines = [
        "# Fusion methods for hybrid search",
        "",
        f"Measured {dt.date.today().isoformat()} at commit `{commit()}` with `python bench/fusion.py"
        f"{' --sets ' + ' '.join(args.sets) if args.sets != SETS else ''}`: recall@5 on the dense and",
        "keyword top-100 of every query, fused offline (no near-duplicate folding, so a little below",
        "`semsearch eval`). `worst`: the smallest margin, in points, over the better single mode of a set;",
        "`cross-lingual`: the largest loss against dense on en2zh / zh2en, in points (negative: a gain).",
        "Recall@1 of the main methods follows the table: adding to recall@5 must not cost the top result.",
        "",
        "| method | " + " | ".join(table) + " | worst | cross-lingual |",
        "|---|" + "---|" * (len(table) + 2),
    ]
    for method, row in figures.items():
        worst = min(row[n] - max(figures["dense"][n], figures["keyword"][n]) for n in table)
        cross = max([figures["dense"][n] - row[n] for n in table if n in CROSS_LINGUAL], default=0.0)
        cells = [f"{row[n]:.4f}" for n in table] + [f"{100 * worst:+.2f}", f"{100 * cross:.2f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "Recall@1:", "", "| method | " + " | ".join(table) + " |", "|---|" + "---|" * len(table)]
    for method in TOP1_METHODS:
        cells = [f"{recall_at(rows, METHODS[method], 1):.4f}" for rows in table.values()]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if not args.no_write:
        (ROOT / "docs" / "fusion.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
