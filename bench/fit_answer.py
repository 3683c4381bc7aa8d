"""Fit the answer model's weights (`search/answer.py`) on a slice of a development set.

    python bench/fit_answer.py ../shared/eval/cmrc2018-dev --first 300
    python bench/fit_answer.py ../shared/eval/cmrc2018-dev ../shared/eval/xquad/zh:80 --first 300

(several sets: their candidates are pooled; `SET:N` fits on the first N questions of that set)

For each of the first N questions: hybrid search (k=5, as `semsearch ask` does), every sentence of the
passages with its features (`search.answer.candidates`), labelled 1 when it contains a gold answer
(CMRC normalisation: no punctuation, no white space). Then:

1. the sentence ranker: L2-regularised logistic regression over all candidate sentences;
2. the confidence: logistic regression over the best sentence of each question (ranked with the weights
   of step 1), label = it contains a gold answer, so its output is P(answer_hit | answered);
3. the threshold: precision and coverage of answered questions at each confidence, printed as a table.

Prints the constants to paste into `search/answer.py`. Only the first N questions are read, so the rest of
the set stays a held-out test (`semsearch eval DIR --answers --skip N` reports on them).

    python bench/fit_answer.py DIR --start 300 --first 700 --evaluate --cache rows.pkl

collects (resumably) the candidates of questions 300-699 and scores them with the constants in the code,
as `answer_metrics` does, with examples: the held-out figures of docs/answers.md come from there.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from index.config import IndexSettings  # noqa: E402
from search import answer as A  # noqa: E402
from search.engine import Engine  # noqa: E402
from search.evaluate import contains_answer, eval_index, read_jsonl  # noqa: E402


def logistic_fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> tuple[np.ndarray, float]:
    """Newton's method for L2-penalised logistic regression (the bias is not penalised)."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (p - y) + penalty * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def collect(folder: Path, first: int, k: int, cache: Path, start: int = 0) -> list[dict]:
    """Candidates of questions start … first-1, cached as they come (the embedding is the slow part): a
    run that is stopped resumes where it was, and `--evaluate` can score whatever has been collected."""
    rows: list[dict] = pickle.loads(cache.read_bytes()) if cache.exists() else []
    if len(rows) >= first - start:
        return rows[: first - start]
    index_dir, _ = eval_index(folder, IndexSettings.from_env())
    engine = Engine.open(index_dir)
    queries = read_jsonl(folder / "queries.jsonl")[start + len(rows) : first]
    started = time.perf_counter()
    for i, q in enumerate(queries):
        results = A.retrieve(engine, q["question"], k, None)
        parsed = A.Question.parse(q["question"])
        cands = A.candidates(engine, parsed, results)
        rows.append(
            {
                "question": q["question"],
                "answers": q["answers"],
                "features": [c.features for c in cands],
                "labels": [int(contains_answer(c.text, q["answers"])) for c in cands],
                "texts": [c.text for c in cands],
            }
        )
        if (i + 1) % 10 == 0 or i + 1 == len(queries):
            cache.write_bytes(pickle.dumps(rows))
            print(f"{len(rows)} questions, {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    return rows


def evaluate_rows(rows: list[dict], threshold: float | None = None) -> dict:
    """answer_hit / em / f1 / withheld exactly as `answer_metrics` computes them, from collected rows
    (the same candidates, ranker, confidence and span code; only the search is not run again)."""
    from search.evaluate import answer_em, answer_f1, reliability_table

    threshold = A.SENTENCE_THRESHOLD if threshold is None else threshold
    sums = dict.fromkeys(("answer_hit", "em", "f1", "withheld", "answer_hit_all", "em_all", "f1_all"), 0.0)
    confs, hits, examples = [], [], []
    for r in rows:
        if not r["features"]:
            sums["withheld"] += 1
            confs.append(0.0)
            hits.append(0.0)
            continue
        cands = [A.Candidate(result=None, start=0, end=0, features=f) for f in r["features"]]  # type: ignore[arg-type]
        text_of = {id(c): t for c, t in zip(cands, r["texts"], strict=True)}
        ranked = A.score(cands)
        conf = A.confidence(ranked)
        sentence = text_of[id(ranked[0])]
        span = A.answer_span(sentence, A.Question.parse(r["question"]))
        predicted = sentence[span[0] : span[1]] if span else sentence
        scores = {
            "answer_hit": float(contains_answer(sentence, r["answers"])),
            "em": answer_em(predicted, r["answers"]),
            "f1": answer_f1(predicted, r["answers"]),
        }
        answered = conf >= threshold
        for key, value in scores.items():
            sums[f"{key}_all"] += value
            sums[key] += value if answered else 0.0
        sums["withheld"] += 0.0 if answered else 1.0
        confs.append(conf)
        hits.append(scores["answer_hit"])
        examples.append({"question": r["question"], "answers": r["answers"], "sentence": sentence,
                         "span": predicted, "confidence": round(conf, 3), **scores})
    n = max(1, len(rows))
    out: dict = {key: round(value / n, 4) for key, value in sums.items()}
    answered_hits = [h for c, h in zip(confs, hits, strict=True) if c >= threshold]
    out["precision_answered"] = round(sum(answered_hits) / len(answered_hits), 4) if answered_hits else 0.0
    out["threshold"] = threshold
    out["queries"] = len(rows)
    out["reliability"] = reliability_table(confs, hits)
    out["examples"] = examples
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="set folders, each SET or SET:N (its first N questions)")
    ap.add_argument("--first", type=int, default=300)
    ap.add_argument("--start", type=int, default=0, help="with --evaluate: the first question scored")
    ap.add_argument("--evaluate", action="store_true",
                    help="score questions --start … --first-1 with the constants in search/answer.py")
    ap.add_argument("--k", type=int, default=A.DEFAULT_K)
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/semsearch-fit-answer.pkl"),
                    help="candidate cache; with several sets, one file per set named after it")
    ap.add_argument("--collect-only", action="store_true", help="only collect (and cache) candidates")
    args = ap.parse_args()
    rows = []
    for spec in args.folders:
        folder, _, count = spec.partition(":")
        cache = args.cache
        if len(args.folders) > 1:
            slug = "-".join(Path(folder).resolve().parts[-2:])
            cache = args.cache.with_name(f"{args.cache.stem}-{slug}{args.cache.suffix}")
        rows += collect(Path(folder), int(count) if count else args.first, args.k, cache, args.start)
    if args.collect_only:
        return
    if args.evaluate:
        print(json.dumps(evaluate_rows(rows), ensure_ascii=False))
        return

    feats = [r for r in rows if r["features"]]
    x = np.asarray([[f[name] for name in A.FEATURES] for r in feats for f in r["features"]])
    y = np.asarray([lab for r in feats for lab in r["labels"]], dtype=np.float64)
    w, b = logistic_fit(x, y, args.l2)
    print(f"# {len(feats)} questions, {len(y)} candidate sentences, {int(y.sum())} contain a gold answer")
    print("RANKER_WEIGHTS = (" + ", ".join(f"{v:.3f}" for v in w) + ")")
    print(f"RANKER_BIAS = {b:.3f}")
    for name, v in zip(A.FEATURES, w, strict=True):
        print(f"#   {name:>9}: {v:+.3f}")

    # Best sentence of each question under the fitted ranker, and whether it holds the answer.
    A.RANKER_WEIGHTS, A.RANKER_BIAS = tuple(w), b
    top_x, top_y, oracle = [], [], 0
    for r in rows:
        if not r["features"]:
            top_x.append([-10.0, 0.0, 0.0, 0.0])
            top_y.append(0.0)
            continue
        cands = [A.Candidate(result=None, start=0, end=0, features=f) for f in r["features"]]  # type: ignore[arg-type]
        labels = {id(c): label for c, label in zip(cands, r["labels"], strict=True)}
        ranked = A.score(cands)
        top_x.append(A.confidence_features(ranked))
        top_y.append(float(labels[id(ranked[0])]))
        oracle += int(any(r["labels"]))
    cx, cy = np.asarray(top_x), np.asarray(top_y)
    cw, cb = logistic_fit(cx, cy, args.l2)
    print(f"# top-1 sentence holds a gold answer: {cy.mean():.3f} (any candidate: {oracle / len(rows):.3f})")
    print("CONFIDENCE_WEIGHTS = (" + ", ".join(f"{v:.3f}" for v in cw) + ")")
    print(f"CONFIDENCE_BIAS = {cb:.3f}")
    p = (0.5 + 0.5 * cx[:, 3]) / (1.0 + np.exp(-(cx @ cw + cb)))  # the entity gate of A.confidence
    print("# threshold  answered  precision(answered)  answer_hit(all)")
    for t in (0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7):
        answered = p >= t
        prec = cy[answered].mean() if answered.any() else 0.0
        hit = (cy * answered).mean()
        print(f"#   {t:.2f}      {answered.mean():.3f}     {prec:.3f}               {hit:.3f}")
    print(json.dumps({"ranker": list(w), "confidence": list(cw)}))


if __name__ == "__main__":
    main()
