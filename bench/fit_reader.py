"""Fit the reader's confidence (`READER_WEIGHTS` in `search/answer.py`) and choose its threshold.

    python bench/fit_reader.py            # the held-out questions of CMRC 2018 dev and DRCD dev
    python bench/fit_reader.py --evaluate ../shared/eval/xquad/zh --first 500

The questions are those of the documents `bench/train_reader.py` held out from training (the same seed
gives the same documents). For each: hybrid search (k=5, as `semsearch ask`), the reader over the first
`READ_PASSAGES` passages, and per span read its features (`search.answer.reader_features`) with label 1
when the span's sentence holds a gold answer. An L2-penalised logistic regression over all spans gives
the weights: the best span of a question is the one of highest logit, its confidence the logit's
probability times the key-entity gate. Prints the weights and, per threshold, the share answered and the
precision of the answers, then the constants to paste (the threshold: the lowest at which 90 % of the
answers given are right).
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fit_answer import logistic_fit  # noqa: E402

from index.config import IndexSettings  # noqa: E402
from search import answer as A  # noqa: E402
from search.engine import Engine  # noqa: E402
from search.evaluate import answer_em, answer_f1, contains_answer, eval_index, read_jsonl  # noqa: E402
from search.reader import WEIGHTS_DIR, shipped_reader, weights_meta  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
PRECISION = 0.9  # of the answers given at the default threshold


def collect(folder: Path, queries: list[dict], cache: Path) -> list[dict]:
    rows: list[dict] = pickle.loads(cache.read_bytes()) if cache.exists() else []
    done = {r["qid"] for r in rows}
    todo = [q for q in queries if q["qid"] not in done]
    if not todo:
        return [r for r in rows if r["qid"] in {q["qid"] for q in queries}]
    index_dir, _ = eval_index(folder, IndexSettings.from_env())
    engine = Engine.open(index_dir)
    reader = shipped_reader()
    started = time.perf_counter()
    for i, q in enumerate(todo):
        results = A.retrieve(engine, q["question"], A.DEFAULT_K, None)
        read = results[: A.READ_PASSAGES]
        spans = reader.read(q["question"], [r.text for r in read])
        parsed = A.Question.parse(q["question"])
        feats = A.reader_features(spans).tolist() if spans else []
        items = []
        for span in spans:
            result = read[span.passage]
            s, e = A._sentence_around(result.text, span.start, span.end)
            items.append({
                "sentence": result.text[s:e],
                "span": result.text[span.start : span.end],
                "gate": A.entity_gate(parsed, result),
            })
        labels = [int(contains_answer(it["sentence"], q["answers"])) for it in items]
        rows.append({"qid": q["qid"], "question": q["question"], "answers": q["answers"], "features": feats,
                     "items": items, "labels": labels})
        if (i + 1) % 25 == 0 or i + 1 == len(todo):
            cache.write_bytes(pickle.dumps(rows))
            rate = (i + 1) / (time.perf_counter() - started)
            print(f"  {folder.name}: {i + 1}/{len(todo)} questions, {rate:.1f}/s, "
                  f"ETA {(len(todo) - i - 1) / rate:.0f} s", file=sys.stderr, flush=True)
    return rows


def code_digest() -> str:
    """A digest of the search and index code: what retrieval gives the reader to read."""
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "search").rglob("*.py"), *(ROOT / "index").rglob("*.py")]):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def evaluate(rows: list[dict], weights: np.ndarray, bias: float, threshold: float) -> dict:
    sums = dict.fromkeys(("answer_hit", "em", "f1", "answered", "answer_hit_all", "em_all", "f1_all"), 0.0)
    confs, hits = [], []
    for r in rows:
        if not r["features"]:
            confs.append(0.0)
            hits.append(0.0)
            continue
        z = np.asarray(r["features"]) @ weights + bias
        b = int(np.argmax(z))
        item = r["items"][b]
        conf = item["gate"] / (1 + np.exp(-z[b]))
        scores = {"answer_hit": float(r["labels"][b]), "em": answer_em(item["span"], r["answers"]),
                  "f1": answer_f1(item["span"], r["answers"])}
        for key, value in scores.items():
            sums[f"{key}_all"] += value
            sums[key] += value if conf >= threshold else 0.0
        sums["answered"] += float(conf >= threshold)
        confs.append(conf)
        hits.append(scores["answer_hit"])
    n = max(1, len(rows))
    out = {key: round(value / n, 4) for key, value in sums.items()}
    out["precision_answered"] = round(sums["answer_hit"] / max(1.0, sums["answered"]), 4)
    out["threshold"] = threshold
    out["questions"] = len(rows)
    return out


def held_out_queries(seed: int) -> dict[str, list[dict]]:
    """Each set's held-out questions, in Chinese. The English glosses the reader also trained on are left
    out: they keep a question's unglossed names in Chinese, so the entity gate (which real English
    questions over Chinese text skip) halves their confidence, and they would fit the weights to that."""
    import train_reader

    pairs = train_reader.make_pairs(EVAL, seed)
    held = {p.qid for p in pairs if p.held_out and p.answer is not None}
    return {name: [q for q in read_jsonl(EVAL / name / "queries.jsonl") if q["qid"] in held]
            for name in train_reader.SETS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=13, help="the seed the reader was trained with")
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--evaluate", type=Path, help="score this set with the constants in the code instead")
    ap.add_argument("--first", type=int, default=500)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/semsearch-fit-reader"))
    args = ap.parse_args()
    # The cached reads are those of one set of reader weights over one retrieval: a retrained reader, or
    # changed search or index code (whose passages the reader reads), reads afresh.
    args.cache = args.cache / f"{weights_meta(WEIGHTS_DIR)['sha256'][:16]}-{code_digest()}"
    args.cache.mkdir(parents=True, exist_ok=True)
    weights, bias = np.asarray(A.READER_WEIGHTS), A.READER_BIAS
    if args.evaluate:
        queries = read_jsonl(args.evaluate / "queries.jsonl")[: args.first]
        name = args.evaluate.as_posix().replace("/", "_")
        rows = collect(args.evaluate, queries, args.cache / f"eval-{name}.pkl")
        for t in (0.0, 0.3, 0.4, 0.5, 0.6):
            print(evaluate(rows, weights, bias, t))
        return
    rows = []
    for name, queries in held_out_queries(args.seed).items():
        rows += collect(EVAL / name, queries, args.cache / f"held-{name}-{args.seed}.pkl")
    x = np.asarray([f for r in rows for f in r["features"]])
    y = np.asarray([lab for r in rows for lab in r["labels"]], dtype=np.float64)
    weights, bias = logistic_fit(x, y, l2=args.l2)
    print(f"{len(rows)} questions, {len(y)} spans, {int(y.sum())} whose sentence holds the answer")
    print(f"{'threshold':>9} {'answered':>8} {'precision':>9} {'answer_hit':>10} {'em':>6} {'f1':>6}")
    curve = [evaluate(rows, weights, bias, round(float(t), 2)) for t in np.arange(0.0, 0.95, 0.05)]
    for m in curve:
        print(f"{m['threshold']:9.2f} {m['answered']:8.3f} {m['precision_answered']:9.3f} "
              f"{m['answer_hit']:10.3f} {m['em']:6.3f} {m['f1']:6.3f}")
    # The default threshold: the lowest at which the answers given are right 90 % of the time.
    chosen = next((m["threshold"] for m in curve if m["precision_answered"] >= PRECISION), 0.9)
    print(f"READER_WEIGHTS = ({', '.join(f'{w:.3f}' for w in weights)})")
    print(f"READER_BIAS = {bias:.3f}")
    print(f"DEFAULT_THRESHOLD = {chosen}  # the lowest with precision of the answers >= {PRECISION}")


if __name__ == "__main__":
    main()
