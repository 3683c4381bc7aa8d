"""Fusion methods for hybrid search, compared offline on the development sets.

    python bench/fusion.py                    # every retrieval set → docs/fusion.md (lists are cached)
    python bench/fusion.py --sets cmrc2018-dev xquad/en2zh --no-write
    python bench/fusion.py --tower /tmp/tower.pt [--mix 0.5] --no-write   # dense side: a query tower

For each query of a set, the dense and the keyword top-100 (ids and scores) are collected once through
the engine, over the same cached index `semsearch eval` uses, with what the engine reads from the
keyword index beside them (`Engine._word_shares`): the keyword list's coverage of the query's words and
each candidate's idf-weighted shares of the query's words and bigrams and its phrase run. Fusion formulas
are then scored on those lists: recall@1 and recall@5 at document level (definitions in
../shared/eval/README.md), after folding near-duplicate passages as `Engine.search` does
(`search.dedupe`), so the figures are those of `semsearch eval` up to ties. Weights are also chosen with
one family of sets held out at a time (`FAMILIES`): the held-out family is scored at the weights that do
best on the others.

With `--tower` the queries are embedded by a query encoder of `bench/query_tower.py` (`--mix A`: the
unit mean of A × e5's query vector and (1 − A) × the tower's), its lists cached apart, and the fusion's
weights compared again for that stronger dense side (`RETUNED`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
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
SETS = [
    "cmrc2018-dev", "drcd-dev", "xquad/zh", "xquad/en", "xquad/en2zh", "xquad/zh2en", "sts/PAWSX",
    "news/antiterror-train",
]
# Sets that share a source and a kind of text: weights are chosen with one family held out at a time.
FAMILIES = {
    "wiki-zh": ["cmrc2018-dev", "drcd-dev"],
    "xquad": ["xquad/zh", "xquad/en", "xquad/en2zh", "xquad/zh2en"],
    "paws": ["sts/PAWSX"],
    "news": ["news/antiterror-train"],
}
DEPTH = 100
CACHE = Path.home() / ".cache" / "semsearch" / "fusion"
# the two lists, coverage and word shares (the retrieval: the slow part); v4: identifiers are whole words;
# v6: a query keyword search hardly covers is embedded by the query tower, as the engine does
LISTS_VERSION = "v6"
# v5: with the bigram shares, phrase runs and number shares of `Engine._word_shares`; v6: on v6 lists
CACHE_VERSION = "v6"


def collect_documents(name: str, titled: bool = True, depth: int = DEPTH) -> list[dict[str, float]]:
    """Per query: the BM25 score of the top documents of a keyword index over whole documents (title and
    text, or the text alone), doc id → score; built in-process from the set's corpus (small)."""
    from index.stores.bm25_store import BM25Store
    from search.evaluate import read_jsonl

    corpus = read_jsonl(EVAL / name / "corpus.jsonl")
    key = f"{name.replace('/', '+')}-docs-{'titled' if titled else 'text'}-{LISTS_VERSION}"
    cache = CACHE / f"{key}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    store = BM25Store()
    texts = [(d.get("title") or "") + "\n" + d["text"] if titled else d["text"] for d in corpus]
    store.build(np.arange(len(corpus), dtype=np.int64), texts)
    out = []
    for q in read_jsonl(EVAL / name / "queries.jsonl"):
        scores, ids = store.search(q["question"], depth)
        out.append({corpus[int(i)]["doc_id"]: float(s) for s, i in zip(scores, ids, strict=True)})
    CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(out))
    return out


def lists(name: str, settings: IndexSettings) -> list[dict]:
    """Per query: dense and keyword lists as (document id, passage id, score), the coverage, each
    candidate's idf-weighted word share and its share of the words counted once, the relevant docs."""
    from index.analysis import query_words
    from search.engine import HYBRID_DEPTH, Engine
    from search.evaluate import eval_index, read_jsonl
    from search.hybrid import MIN_COVERAGE, dense_hits, keyword_hits

    index_dir, _ = eval_index(EVAL / name, settings)
    cache = CACHE / f"{index_dir.name}-{LISTS_VERSION}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    engine = Engine.open(index_dir)
    snap = engine.snapshot()
    assert snap.keywords is not None
    doc_of: dict[int, str] = {}
    rows = []
    for q in read_jsonl(EVAL / name / "queries.jsonl"):
        keyword = keyword_hits(*snap.keywords.search(q["question"], HYBRID_DEPTH, None))
        coverage = engine._coverage(snap, q["question"], keyword)
        vector = engine._query_vector(q["question"], across_languages=coverage < MIN_COVERAGE)
        dense = dense_hits(*(a[0] for a in snap.vectors.search(vector, HYBRID_DEPTH, None)))
        # The dense list as the engine fuses it: re-ranked by sentence evidence where the index has it.
        dense = engine._rescored(snap, vector[0], dense, keyword)[:HYBRID_DEPTH]
        ids = [h.passage_id for h in dense + keyword if h.passage_id not in doc_of]
        doc_of.update({pid: row.doc_id for pid, row in snap.passages.passages(ids).items()})
        lexical = engine._word_shares(snap, q["question"], dense, keyword)
        words = list(query_words(q["question"]))
        found = snap.keywords.matched_terms(words, list(lexical.word))
        rows.append({
            "dense": [(doc_of[h.passage_id], h.passage_id, h.score) for h in dense],
            "keyword": [(doc_of[h.passage_id], h.passage_id, h.score) for h in keyword],
            "coverage": coverage,
            "shares": dict(lexical.word),
            "counts": {pid: len(f) / len(words) for pid, f in zip(lexical.word, found, strict=True)},
            "relevant": set(q.get("doc_ids") or [q["doc_id"]]),
            "exclude": set(q.get("exclude_doc_ids") or []),
        })
        if len(rows) % 500 == 0:
            print(f"{name}: {len(rows)} queries", file=sys.stderr, flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(rows))
    return rows


def collect(name: str, settings: IndexSettings) -> list[dict]:
    """`lists`, with each candidate's bigram share, phrase run and number share (`lexical`: passage id →
    (word share, bigram share, phrase run, number share), as the engine computes them; `numbered`: the
    query has number words) and the document-level keyword scores
    (`docs`, `collect_documents`) of each query."""
    from search.engine import Engine
    from search.evaluate import eval_index, read_jsonl
    from search.hybrid import Hit

    index_dir, _ = eval_index(EVAL / name, settings)
    cache = CACHE / f"{index_dir.name}-{CACHE_VERSION}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    rows = lists(name, settings)
    engine = Engine.open(index_dir)
    snap = engine.snapshot()
    docs = collect_documents(name)
    for q, row, doc_scores in zip(read_jsonl(EVAL / name / "queries.jsonl"), rows, docs, strict=True):
        dense = [Hit(pid, s, dense_score=s, dense_rank=r) for r, (_, pid, s) in enumerate(row["dense"], 1)]
        keyword = [
            Hit(pid, s, keyword_score=s, keyword_rank=r) for r, (_, pid, s) in enumerate(row["keyword"], 1)
        ]
        lexical = engine._word_shares(snap, q["question"], dense, keyword)
        row["lexical"] = {
            pid: (
                lexical.word.get(pid, 0.0), lexical.grams.get(pid, 0.0), lexical.phrase.get(pid, 0.0),
                lexical.numbers.get(pid, 0.0),
            )
            for pid in {h.passage_id for h in dense + keyword}
        }
        row["numbered"] = bool(lexical.numbers)
        row["docs"] = doc_scores
    cache.write_bytes(pickle.dumps(rows))
    return rows


def shingled(name: str, settings: IndexSettings) -> dict[int, set[str]]:
    """Every passage's shingles (`search.dedupe`), to fold near-duplicates as the engine does."""
    from index.generations import IndexDir
    from index.stores.passages import PassageStore
    from search.dedupe import shingles
    from search.evaluate import eval_index

    index_dir, _ = eval_index(EVAL / name, settings)
    folder = IndexDir(index_dir)
    store = PassageStore.open(folder.path(folder.current()))
    try:
        return {pid: shingles(text) for pid, text, _ in store.all_passages()}
    finally:
        store.close()


Fusion = Callable[[dict], list[int]]  # a query's row → its candidates' passage ids, best first


def ranked(scores: dict[int, float]) -> list[int]:
    return [pid for pid, _ in sorted(scores.items(), key=lambda kv: -kv[1])]


def _normalised(hits: list[tuple[str, int, float]]) -> dict[int, float]:
    """Min-max over the list (a single score, or all equal, gives 1.0), as `search.hybrid._min_max`."""
    if not hits:
        return {}
    s = np.asarray([h[2] for h in hits], dtype=np.float64)
    lo, hi = s.min(), s.max()
    return {pid: (score - lo) / (hi - lo) if hi > lo else 1.0 for _, pid, score in hits}


def rrf(scale: float = 1.0, power: float = 1.0, k: int = 60, floor: float = 0.0) -> Fusion:
    """Σ w / (k + rank); the keyword list weighted scale · max(coverage, floor) ** power."""

    def fuse(row: dict) -> list[int]:
        w = scale * max(row["coverage"], floor) ** power
        scores: dict[int, float] = {}
        for rank, (_, pid, _) in enumerate(row["dense"], 1):
            scores[pid] = 1.0 / (k + rank)
        for rank, (_, pid, _) in enumerate(row["keyword"], 1):
            scores[pid] = scores.get(pid, 0.0) + w / (k + rank)
        return ranked(scores)

    return fuse


def convex(
    alpha: float,
    power: float = 0.5,
    *,
    words: float = 0.0,
    grams: float = 0.0,
    phrase: float = 0.0,
    documents: float = 0.0,
    separation: float | None = None,
    idf: bool = True,
) -> Fusion:
    """alpha · coverage ** power · keyword + (1 - that) · dense on min-max normalised scores (a missing
    score counts as the list's minimum), plus `words` × the candidate's word share (idf-weighted, or each
    word counted once), `grams` × its bigram share, `phrase` × its phrase run and `documents` × its
    document's keyword score over whole documents (min-max over the top documents, `collect_documents`);
    with `separation` the bigram and phrase weights are scaled as `search.hybrid.fuse` scales them by the
    dense list's separation."""
    from search.hybrid import SEPARATION_DEPTH

    def fuse(row: dict) -> list[int]:
        a = alpha * row["coverage"] ** power
        dense, keyword = _normalised(row["dense"]), _normalised(row["keyword"])
        lexical = row["lexical"]
        shares = row["shares"] if idf else row["counts"]
        doc_norm = {}
        if documents and row["docs"]:
            values = np.asarray(list(row["docs"].values()))
            lo, hi = values.min(), values.max()
            doc_norm = {d: (v - lo) / (hi - lo) if hi > lo else 1.0 for d, v in row["docs"].items()}
        doc_of = {pid: doc for doc, pid, _ in row["dense"] + row["keyword"]}
        order = 1.0
        if separation is not None and row["dense"]:
            top, last = row["dense"][0][2], row["dense"][min(SEPARATION_DEPTH, len(row["dense"])) - 1][2]
            order = separation / (separation + max(0.0, top - last))
        scores = {}
        for pid in doc_of:
            _, gram_share, run, _ = lexical.get(pid, (0.0, 0.0, 0.0, 0.0))
            scores[pid] = (
                (1 - a) * dense.get(pid, 0.0) + a * keyword.get(pid, 0.0) + words * shares.get(pid, 0.0)
                + order * (grams * gram_share + phrase * run) + documents * doc_norm.get(doc_of[pid], 0.0)
            )
        return ranked(scores)

    return fuse


def default(number_weight: float | None = None) -> Fusion:
    """The engine's own fusion (`search.hybrid.fuse`) on the same lists, at another number-share weight
    when given (0: the fusion before the number share)."""
    from search.hybrid import Hit, Lexical, fuse

    def run(row: dict) -> list[int]:
        dense = [Hit(pid, s, dense_score=s, dense_rank=r) for r, (_, pid, s) in enumerate(row["dense"], 1)]
        keyword = [
            Hit(pid, s, keyword_score=s, keyword_rank=r) for r, (_, pid, s) in enumerate(row["keyword"], 1)
        ]
        word, grams, phrase, numbers = ({pid: v[i] for pid, v in row["lexical"].items()} for i in range(4))
        lexical = Lexical(word, grams, phrase, numbers if row["numbered"] else {})
        fused = fuse(dense, keyword, coverage=row["coverage"], lexical=lexical, number_weight=number_weight)
        return [h.passage_id for h in fused]

    return run


def engine_with(**weights: float) -> Fusion:
    """The engine's own fusion with some of `search.hybrid`'s weights replaced (KEYWORD_SHARE=0.4, …)."""
    from search import hybrid

    run = default()

    def fuse(row: dict) -> list[int]:
        saved = {name: getattr(hybrid, name) for name in weights}
        try:
            for name, value in weights.items():
                setattr(hybrid, name, value)
            return run(row)
        finally:
            for name, value in saved.items():
                setattr(hybrid, name, value)

    return fuse


def single(name: str) -> Fusion:
    return lambda row: [pid for _, pid, _ in row[name]]


def recalls(rows: list[dict], fuse: Fusion, grams: dict[int, set[str]]) -> tuple[float, float]:
    """recall@1 and recall@5 by document, after folding near-duplicates into the better-ranked passage
    (a folded passage's document counts for the one it was folded into, as in `semsearch eval`); a
    result is dropped when all its documents are excluded."""
    from search.dedupe import near_duplicates

    at1 = at5 = 0
    for row in rows:
        doc_of = {pid: doc for doc, pid, _ in row["dense"] + row["keyword"]}
        kept: list[tuple[set[str], set[str]]] = []  # (shingles, documents) of each result
        shown = 0
        for pid in fuse(row):
            mine = grams.get(pid, set())
            for first, docs in kept:
                if near_duplicates(mine, first):
                    docs.add(doc_of[pid])
                    break
            else:
                kept.append((mine, {doc_of[pid]}))
                shown += 1
                if shown >= 10 + 2 * len(row["exclude"]):
                    break
        results = [docs for _, docs in kept if docs - row["exclude"]][:5]
        at1 += bool(results) and bool(results[0] & row["relevant"])
        at5 += any(docs & row["relevant"] for docs in results)
    n = max(1, len(rows))
    return at1 / n, at5 / n


BASE = "convex 0.5 × √coverage, word share 0.5"
BEFORE = f"{BASE} (semsearch before)"
DEFAULT = ("semsearch: convex 0.5 × coverage (none under 0.2), word share 0.5, phrase run 1.0, "
           "separation 0.1, number share 0.05 (search/hybrid.py)")
NUMBERS = f"{BASE}, phrase run 1.0, separation 0.1, number share 0.05 (semsearch before the minimum coverage)"
PHRASE = f"{BASE}, phrase run 1.0, separation 0.1 (semsearch before the number share)"
# The bigram-share and phrase-run weights and the separation compared, and chosen with one family held
# out at a time.
GRID = {
    f"{BASE}, bigram share {g}, phrase run {p}, separation {c}": convex(
        0.5, words=0.5, grams=g, phrase=p, separation=c
    )
    for c in (0.02, 0.05, 0.1)
    for g, p in ((0.0, 1.0), (0.5, 1.0), (0.5, 1.5), (1.0, 2.0))
}
METHODS: dict[str, Fusion] = {
    "dense": single("dense"),
    "keyword": single("keyword"),
    DEFAULT: default(),
    NUMBERS: engine_with(KEYWORD_COVERAGE_POWER=0.5, MIN_COVERAGE=0.0),
    PHRASE: engine_with(KEYWORD_COVERAGE_POWER=0.5, MIN_COVERAGE=0.0, NUMBER_WEIGHT=0.0),
    **{
        f"{BASE}, phrase run 1.0, separation 0.1, number share {w}": engine_with(
            KEYWORD_COVERAGE_POWER=0.5, MIN_COVERAGE=0.0, NUMBER_WEIGHT=w
        )
        for w in (0.02, 0.1, 0.15)
    },
    BEFORE: convex(0.5, words=0.5),
    "rrf, keyword weight = coverage": rrf(),
    **{f"convex {a} × √coverage, word share 0.5": convex(a, words=0.5) for a in (0.7, 0.9)},
    **{f"{BASE}, document keyword score {d}": convex(0.5, words=0.5, documents=d) for d in (0.5, 1.0)},
    **{
        f"{BASE}, bigram share {g}, phrase run {p} (no separation)": convex(0.5, words=0.5, grams=g, phrase=p)
        for g, p in ((0.0, 0.5), (0.0, 1.0), (0.5, 0.0), (0.5, 1.0), (1.0, 2.0))
    },
    **GRID,
    # With sentence vectors the dense list is stronger: how much of the keyword list it still wants.
    **{
        f"semsearch with keyword share {a} × coverage (none under 0.2), word share {w}": engine_with(
            KEYWORD_SHARE=a, WORD_WEIGHT=w
        )
        for a, w in ((0.3, 0.5), (0.4, 0.5), (0.6, 0.5), (0.5, 0.3), (0.5, 0.7), (0.4, 0.3), (0.3, 0.3))
    },
    # How the keyword list's share falls with coverage, and the coverage under which a query counts as
    # one the text does not share (the keyword list and word shares then weigh nothing).
    **{
        f"semsearch with keyword share 0.5 × coverage ** {power}, minimum coverage {floor}": engine_with(
            KEYWORD_COVERAGE_POWER=power, MIN_COVERAGE=floor
        )
        for power, floor in itertools.product((0.5, 1.0, 1.25), (0.0, 0.2, 0.25, 0.3, 0.34))
    },
    f"{BASE}, bigram share 0.5, phrase run 1.0, separation 0.05, document keyword score 0.5": convex(
        0.5, words=0.5, grams=0.5, phrase=1.0, separation=0.05, documents=0.5
    ),
}
# For a query tower's dense side: the separation, keyword share, phrase-run and word-share weights again.
RETUNED: dict[str, Fusion] = {
    f"semsearch with separation {sep}, keyword share {share}, phrase run {phrase}, word share {word}": (
        engine_with(SEPARATION=sep, KEYWORD_SHARE=share, PHRASE_WEIGHT=phrase, WORD_WEIGHT=word)
    )
    for sep, share, phrase, word in itertools.product((0.1, 0.2), (0.4, 0.5), (1.0, 1.5), (0.5, 0.7))
}
CROSS_LINGUAL = {"xquad/en2zh", "xquad/zh2en"}


def use_tower(path: Path, mix: float | None) -> None:
    """Embed queries with the query tower saved at `path` (mixed with e5's vector when `mix` is given),
    and keep its lists apart from e5's."""
    global CACHE
    import torch
    from query_tower import tower

    from index.embedders.onnx import OnnxEmbedder

    torch.set_num_threads(2)
    network = tower(0)
    network.model.load_state_dict(torch.load(path))
    network.eval()
    e5_queries = OnnxEmbedder.encode_queries

    def encode_queries(embedder: OnnxEmbedder, texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            tuned = network(list(texts)).numpy().astype(np.float32)
        if mix is None:
            return tuned
        mixed = mix * e5_queries(embedder, texts) + (1 - mix) * tuned
        return (mixed / np.linalg.norm(mixed, axis=1, keepdims=True)).astype(np.float32)

    OnnxEmbedder.encode_queries = encode_queries  # type: ignore[method-assign]
    CACHE = CACHE.with_name("fusion-tower" if mix is None else f"fusion-mix{mix}")


def held_out(
    figures: dict[str, dict[str, tuple[float, float]]], table: list[str], grid: dict[str, Fusion], prefix: str
) -> list[str]:
    """For each family: the grid weights that do best on the other families (the sum of recall@1 and
    recall@5 over their sets), and the held-out family's figures at those weights (named without the
    grid's common `prefix`)."""
    lines = []
    for family, members in FAMILIES.items():
        scored = [n for n in members if n in table]
        others = [n for n in table if n not in members]
        if not scored or not others:
            continue
        best = max(grid, key=lambda m: sum(sum(figures[m][n]) for n in others))
        cells = ", ".join(f"{n} {figures[best][n][0]:.4f} / {figures[best][n][1]:.4f}" for n in scored)
        lines.append(f"| {family} | {best.removeprefix(prefix)} | {cells} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="*", default=SETS)
    parser.add_argument("--no-write", action="store_true", help="print only; do not write docs/fusion.md")
    parser.add_argument("--tower", type=Path, help="queries embedded by this bench/query_tower.py tower")
    parser.add_argument("--mix", type=float, help="with --tower: e5's share of the query vector")
    args = parser.parse_args(argv)
    if args.mix is not None and not (args.tower and 0.0 <= args.mix <= 1.0):
        parser.error("--mix needs --tower and a share between 0 and 1")
    if not EVAL.exists():
        print(f"no development sets at {EVAL}; nothing to measure", file=sys.stderr)
        return 0
    methods = METHODS
    if args.tower:
        use_tower(args.tower, args.mix)
        methods = {"dense": METHODS["dense"], "keyword": METHODS["keyword"], DEFAULT: METHODS[DEFAULT],
                   **RETUNED}
        args.no_write = True  # the page's table is e5's
    grid = (RETUNED, "semsearch with ") if args.tower else (GRID, BASE + ", ")
    settings = IndexSettings.from_env()
    names = [name for name in args.sets if (EVAL / name / "queries.jsonl").exists()]
    table = {name: collect(name, settings) for name in names}
    grams = {name: shingled(name, settings) for name in names}
    figures = {}
    for method, fuse in methods.items():
        figures[method] = {name: recalls(rows, fuse, grams[name]) for name, rows in table.items()}
        print(method, figures[method], file=sys.stderr, flush=True)
    lines = [
        "# Fusion methods for hybrid search",
        "",
        f"Measured {dt.date.today().isoformat()} at commit `{commit()}` with `python bench/fusion.py"
        f"{' --sets ' + ' '.join(args.sets) if args.sets != SETS else ''}`: recall@1 / recall@5 on the",
        "dense and keyword top-100 of every query, fused offline and folded for near-duplicates as",
        "`Engine.search` does. `worst@1`, `worst@5`: the smallest margin, in points, over the better single",
        "mode of a set; `cross-lingual`: the largest recall@5 loss against dense on en2zh / zh2en, in points",
        "(negative: a gain).",
        "",
        "| method | " + " | ".join(table) + " | worst@1 | worst@5 | cross-lingual |",
        "|---|" + "---|" * (len(table) + 3),
    ]
    for method, row in figures.items():
        margins = [
            [row[n][i] - max(figures["dense"][n][i], figures["keyword"][n][i]) for n in table] for i in (0, 1)
        ]
        cross = max([figures["dense"][n][1] - row[n][1] for n in table if n in CROSS_LINGUAL], default=0.0)
        cells = [f"{row[n][0]:.4f} / {row[n][1]:.4f}" for n in table]
        cells += [f"{100 * min(margins[0]):+.2f}", f"{100 * min(margins[1]):+.2f}", f"{100 * cross:.2f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Leave one family out: the bigram-share and phrase-run weights and the separation of the grid above",
        "(the rows with a separation) chosen on the other",
        "families (best sum of recall@1 and recall@5 over their sets), then scored on the held-out family",
        "(recall@1 / recall@5).",
        "",
        "| held out | weights chosen on the others | held-out figures |",
        "|---|---|---|",
        *held_out(figures, list(table), *grid),
    ]
    print("\n".join(lines))
    if not args.no_write:
        (ROOT / "docs" / "fusion.md").write_text("\n".join(lines) + "\n" + hand_written())
    return 0


NOTES = "## Notes (written by hand)"


def hand_written() -> str:
    """The page's hand-written notes, kept across runs (everything from the NOTES heading on)."""
    page = ROOT / "docs" / "fusion.md"
    text = page.read_text() if page.exists() else ""
    at = text.find(NOTES)
    return "\n" + text[at:] if at >= 0 else ""


if __name__ == "__main__":
    sys.exit(main())
