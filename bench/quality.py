"""Quality table of every development set × retrieval mode → docs/quality.md.

    python bench/quality.py                 # all sets, all modes (indexes are cached after the first run)
    python bench/quality.py --limit 200     # quick look: the first 200 queries of each set

Reads the sets from ../shared/eval (skips cleanly when absent); the figures are those of
`semsearch eval` (definitions in ../shared/eval/README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.config import IndexSettings  # noqa: E402
from search.evaluate import evaluate  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
RETRIEVAL_SETS = ["cmrc2018-dev", "xquad/zh", "xquad/en", "xquad/en2zh", "xquad/zh2en", "sts/PAWSX"]
PAIR_SETS = ["sts/PAWSX", "sts/STS-B"]
MODES = ["keyword", "dense", "hybrid"]
ANSWER_SETS = ["cmrc2018-dev", "xquad/zh", "xquad/en"]  # sets with extractive gold answers
ANSWER_COLUMNS = ["answer_hit", "em", "f1", "withheld", "precision_answered", "answer_hit_all", "f1_all"]
COLUMNS = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer@1", "answer@5", "query_ms_p50"]


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, help="first N queries of each set")
    parser.add_argument("--sets", nargs="*", help="only these sets (e.g. xquad/zh)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "quality.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--answers", action="store_true",
                        help="also answer_hit / em / f1 / withheld of `semsearch ask` (hybrid rows)")
    args = parser.parse_args(argv)
    if not EVAL.exists():
        print(f"no development sets at {EVAL}; nothing to measure", file=sys.stderr)
        return 0
    settings = IndexSettings.from_env()
    rows: dict[str, dict[str, dict]] = {}
    pairs: dict[str, float] = {}
    started = time.time()
    for name in args.sets or RETRIEVAL_SETS:
        if name not in RETRIEVAL_SETS or not (EVAL / name / "queries.jsonl").exists():
            continue
        rows[name] = {}
        for mode in MODES:
            answers = args.answers and mode == "hybrid" and name in ANSWER_SETS
            figures = evaluate(EVAL / name, mode=mode, limit=args.limit, settings=settings, progress=True,
                               answers=answers)
            figures.pop("spearman", None)
            rows[name][mode] = figures
            print(name, mode, json.dumps(figures), flush=True)
    for name in args.sets or PAIR_SETS:
        if name in PAIR_SETS and (EVAL / name / "pairs.jsonl").exists():
            folder = EVAL / name
            # pairs only: evaluate() would also run the queries of PAWSX, which the table above has.
            from index.embedders.factory import create_embedder
            from search.evaluate import pair_spearman, read_jsonl

            data = read_jsonl(folder / "pairs.jsonl")[: args.limit]
            pairs[name] = pair_spearman(create_embedder(settings.embedder), data)
            print(name, "spearman", pairs[name], flush=True)
    if args.json:
        args.json.write_text(json.dumps({"retrieval": rows, "pairs": pairs}, indent=2))
    write_markdown(args.out, rows, pairs, settings, args, time.time() - started)
    return 0


def write_markdown(
    out: Path, rows: dict, pairs: dict, settings: IndexSettings, args: argparse.Namespace, seconds: float
) -> None:
    lines = [
        "# Retrieval quality",
        "",
        f"Measured {dt.date.today().isoformat()} at commit `{commit()}` with "
        f"`python bench/quality.py{' --limit ' + str(args.limit) if args.limit else ''}` "
        f"({seconds / 60:.0f} min on 2 cores). Model `{settings.embedder.model}`, backend "
        f"`{settings.embedder.backend}`, chunks of at most {settings.chunks.max_tokens} tokens. Definitions: "
        "`../shared/eval/README.md` (a passage is relevant when its document is the query's).",
        "",
        "| set | mode | " + " | ".join(COLUMNS) + " | queries |",
        "|---|---|" + "---|" * len(COLUMNS) + "---|",
    ]
    for name, modes in rows.items():
        best = max(modes[m]["recall@5"] for m in ("keyword", "dense") if m in modes)
        for mode, f in modes.items():
            cells = []
            for c in COLUMNS:
                value = f[c]
                cell = f"{value:.1f}" if c == "query_ms_p50" else f"{value:.3f}"
                if c == "recall@5" and mode == "hybrid":
                    cell += " ✓" if value >= best else " ✗"
                cells.append(cell)
            lines.append(f"| {name} | {mode} | " + " | ".join(cells) + f" | {f['queries']} |")
    lines += [
        "",
        "✓ / ✗: hybrid recall@5 at least as good as the better single mode.",
        "",
        "## Pair similarity (Spearman of cosine vs label)",
        "",
        "| set | spearman |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.4f} |" for name, value in pairs.items()]
    answered = {n: modes["hybrid"] for n, modes in rows.items() if "answer_hit" in modes.get("hybrid", {})}
    if answered:
        lines += [
            "",
            "## Answers (`semsearch ask`, extractive; see docs/answers.md)",
            "",
            "Over all queries: a withheld (null) answer scores 0; `*_all`: the best sentence, always given.",
            "",
            "| set | " + " | ".join(ANSWER_COLUMNS) + " | queries |",
            "|---|" + "---|" * len(ANSWER_COLUMNS) + "---|",
        ]
        lines += [f"| {name} | " + " | ".join(f"{f[c]:.3f}" for c in ANSWER_COLUMNS) + f" | {f['queries']} |"
                  for name, f in answered.items()]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
