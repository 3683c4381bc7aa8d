"""The span reader's ceiling: each question read with its gold passage, the best span always given.

    python bench/reader_ceiling.py                      # every set below, up to 1200 questions each
    python bench/reader_ceiling.py --sets xquad/zh --questions 300

`ask` finds passages first and may withhold; here neither can fail. Each question gets the first
passage of its gold document (chunked as `semsearch index` chunks it) that holds a gold answer, and the
shipped reader's best span in it is scored with EM and F1 (`search.evaluate`). So these figures bound
what `bench/answers.py` can show with this reader: a gap between the two is retrieval and withholding,
what is left under the target here is the reader. For CMRC 2018 dev and DRCD dev only the questions of
the documents `bench/train_reader.py` held out are read (the rest were trained on); XQuAD and the news set
were never trained on. Each wrong span is also classed by how it misses the gold answer (normalised as
EM normalises): the gold inside the span (a unit, a leading word), the span inside the gold, overlapping,
or disjoint (the wrong thing read).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from search.evaluate import answer_em, answer_f1, normalize_answer, read_jsonl  # noqa: E402
from search.reader import shipped_reader  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
TRAINED = ("cmrc2018-dev", "drcd-dev")
SETS = (*TRAINED, "xquad/zh", "xquad/en", "news/antiterror-train")
KINDS = ("exact", "gold in span", "span in gold", "overlap", "disjoint")


def held_out_questions(seed: int) -> dict[str, list[tuple[str, str, list[str]]]]:
    """(question, gold passage, answers) of the held-out documents of the reader's training sets."""
    from train_reader import make_pairs

    answers = {
        q["qid"]: (name, [a for a in q["answers"] if a.strip()])
        for name in TRAINED
        for q in read_jsonl(EVAL / name / "queries.jsonl")
    }
    out: dict[str, list[tuple[str, str, list[str]]]] = {name: [] for name in TRAINED}
    for pair in make_pairs(EVAL, seed):
        if pair.held_out and pair.answer is not None:
            name, golds = answers[pair.qid]
            out[name].append((pair.question, pair.passage, golds))
    return out


def gold_passage_questions(name: str) -> list[tuple[str, str, list[str]]]:
    from train_reader import _passages

    passages = _passages(EVAL / name)
    out = []
    for query in read_jsonl(EVAL / name / "queries.jsonl"):
        golds = [a for a in query["answers"] if a.strip()]
        found = next((p for p in passages.get(query["doc_id"], []) if any(g in p for g in golds)), None)
        if found is not None:
            out.append((query["question"], found, golds))
    return out


def kind_of_miss(span: str, golds: list[str]) -> str:
    pred, refs = normalize_answer(span), [normalize_answer(g) for g in golds if g.strip()]
    if pred in refs:
        return "exact"
    if any(r in pred for r in refs):
        return "gold in span"
    if pred and any(pred in r for r in refs):
        return "span in gold"
    if any(set(pred) & set(r) for r in refs):
        return "overlap"
    return "disjoint"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="*", default=list(SETS), choices=SETS)
    ap.add_argument("--questions", type=int, default=1200, help="at most this many of each set, in order")
    ap.add_argument("--seed", type=int, default=13, help="bench/train_reader.py's seed: its held-out split")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not EVAL.is_dir():
        print(f"no development sets at {EVAL}; nothing to measure")
        return 0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    reader = shipped_reader()
    held = held_out_questions(args.seed) if set(args.sets) & set(TRAINED) else {}
    rows = []
    for name in args.sets:
        questions = (held[name] if name in TRAINED else gold_passage_questions(name))[: args.questions]
        started = time.perf_counter()
        em = f1 = span_chars = gold_chars = 0.0
        kinds: Counter[str] = Counter()
        for question, passage, golds in questions:
            spans = reader.read(question, [passage])
            span = passage[spans[0].start : spans[0].end] if spans else ""
            em += answer_em(span, golds)
            f1 += answer_f1(span, golds)
            span_chars += len(span)
            gold_chars += len(golds[0])
            kinds[kind_of_miss(span, golds)] += 1
        n = max(1, len(questions))
        row = {"set": name, "questions": len(questions), "em": round(em / n, 4), "f1": round(f1 / n, 4),
               "span_chars": round(span_chars / n, 1), "gold_chars": round(gold_chars / n, 1),
               **{k: round(kinds[k] / n, 3) for k in KINDS},
               "ms_per_question": round(1000 * (time.perf_counter() - started) / n, 1)}
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    load = os.getloadavg()
    print(f"\ncommit {commit}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| set | questions | em | f1 | span / gold chars | " + " | ".join(KINDS[1:]) + " |")
    print("|---|---|---|---|---|" + "---|" * (len(KINDS) - 1))
    for r in rows:
        print(f"| {r['set']} | {r['questions']} | {r['em']:.3f} | {r['f1']:.3f} | {r['span_chars']} / "
              f"{r['gold_chars']} | " + " | ".join(f"{r[k]:.3f}" for k in KINDS[1:]) + " |")
    if args.json:
        args.json.write_text(json.dumps({"commit": commit, "rows": rows}, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
