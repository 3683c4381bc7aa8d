"""The answer table of docs/answers.md: the span reader against the sentence extractor, in one run.

    python bench/answers.py                       # 300 questions of each set below, both answer paths
    python bench/answers.py --questions 100 --json /tmp/answers.json

For each set, the same questions are asked of the same index twice, once per answer path
(`SEMSEARCH_ANSWER_READER=reader` / `sentences`, each at its own default threshold), with
`search.evaluate.answer_metrics` (definitions in ../shared/eval/README.md: a withheld answer scores 0;
em / f1 on `answer_span`). No set here was trained on: the reader was trained on CMRC 2018 dev and DRCD
dev only, XQuAD is its validation family, and the news set is for measuring only. The first 80 XQuAD zh
questions are skipped, because the sentence extractor's weights were fitted on them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.config import IndexSettings  # noqa: E402
from search.engine import Engine  # noqa: E402
from search.evaluate import answer_metrics, eval_index, read_jsonl  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
SETS = {"xquad/zh": 80, "xquad/en": 0, "xquad/en2zh": 80, "news/antiterror-train": 0}  # set: first question
PATHS = ("sentences", "reader")
COLUMNS = ("answer_hit", "em", "f1", "withheld", "precision_answered", "answer_hit_all", "f1_all")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--sets", nargs="*", default=list(SETS))
    ap.add_argument("--paths", nargs="*", default=list(PATHS), choices=PATHS)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not EVAL.is_dir():
        print(f"no development sets at {EVAL}; nothing to measure")
        return 0
    os.environ["SEMSEARCH_QUERY_CACHE"] = "0"  # each path reads its passages itself
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    rows = []
    for name in args.sets:
        index, _ = eval_index(EVAL / name, IndexSettings.from_env())
        first = SETS.get(name, 0)
        queries = read_jsonl(EVAL / name / "queries.jsonl")[first : first + args.questions]
        for path in args.paths:
            os.environ["SEMSEARCH_ANSWER_READER"] = path
            started = time.perf_counter()
            figures = answer_metrics(Engine.open(index), queries)
            seconds = time.perf_counter() - started
            row = {"set": name, "path": path, "questions": f"{first}-{first + len(queries) - 1}",
                   **{c: figures[c] for c in COLUMNS}, "threshold": figures["threshold"],
                   "s_per_question": round(seconds / max(1, len(queries)), 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    load = os.getloadavg()
    print(f"\ncommit {commit}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| set | questions | answer path | " + " | ".join(COLUMNS) + " | threshold | s/question |")
    print("|---|---|---|" + "---|" * (len(COLUMNS) + 2))
    for r in rows:
        cells = " | ".join(f"{r[c]:.3f}" for c in COLUMNS)
        print(f"| {r['set']} | {r['questions']} | {r['path']} | {cells} | {r['threshold']:.2f} | "
              f"{r['s_per_question']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"commit": commit, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
