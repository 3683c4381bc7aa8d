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
RETRIEVAL_SETS = [
    "cmrc2018-dev", "drcd-dev", "xquad/zh", "xquad/en", "xquad/en2zh", "xquad/zh2en", "sts/PAWSX",
    "news/antiterror-train",
]
PAIR_SETS = ["sts/PAWSX", "sts/STS-B"]
MODES = ["keyword", "dense", "hybrid"]
ANSWER_SETS = ["cmrc2018-dev", "xquad/zh", "xquad/en"]  # sets with extractive gold answers
# The first questions of a set that the answer model was fitted on (bench/fit_answer.py): never scored.
FITTED_ON = {"cmrc2018-dev": 300, "xquad/zh": 80}
ANSWER_COLUMNS = ["answer_hit", "em", "f1", "withheld", "precision_answered", "answer_hit_all", "f1_all"]
COLUMNS = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer@1", "answer@5", "query_ms_p50"]


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def answer_figures(name: str, settings: IndexSettings, questions: int) -> dict:
    """answer_hit, em, f1, withheld … of `semsearch ask` (k 5, hybrid) on `questions` questions of a set
    that follow the slice the answer model was fitted on."""
    from search.engine import Engine
    from search.evaluate import answer_metrics, eval_index, read_jsonl

    index_dir, _ = eval_index(EVAL / name, settings)
    skip = FITTED_ON.get(name, 0)
    queries = read_jsonl(EVAL / name / "queries.jsonl")[skip: skip + questions]
    figures = answer_metrics(Engine.open(index_dir), queries)
    figures.update(queries=len(queries), first=skip)
    return figures


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
    parser.add_argument("--modes", nargs="*", default=MODES, choices=MODES, help="only these modes")
    parser.add_argument("--merge", type=Path,
                        help="start from an earlier --json run's figures; replace what this run measures")
    parser.add_argument("--answer-questions", type=int, default=500,
                        help="questions per set for the answer figures, after the fitted slice (default 500; "
                        "an answer reads ~1 s of sentence embeddings on 2 cores)")
    args = parser.parse_args(argv)
    if not args.modes and not args.answers:
        parser.error("nothing to measure: --modes without a mode and no --answers; name the modes "
                     "(keyword dense hybrid) or add --answers")
    if not EVAL.exists():
        print(f"no development sets at {EVAL}; nothing to measure", file=sys.stderr)
        return 0
    settings = IndexSettings.from_env()
    rows: dict[str, dict[str, dict]] = {}
    answers: dict[str, dict] = {}
    pairs: dict[str, float] = {}
    if args.merge:
        earlier = json.loads(args.merge.read_text())
        rows, answers, pairs = earlier["retrieval"], earlier.get("answers", {}), earlier.get("pairs", {})
        args.earlier = earlier.get("run", {})
    started = time.time()
    for name in args.sets or RETRIEVAL_SETS:
        if name not in RETRIEVAL_SETS or not (EVAL / name / "queries.jsonl").exists():
            continue
        rows.setdefault(name, {})
        for mode in args.modes:
            figures = evaluate(EVAL / name, mode=mode, limit=args.limit, settings=settings, progress=True)
            figures.pop("spearman", None)
            rows[name][mode] = figures
            print(name, mode, json.dumps(figures), flush=True)
        if args.answers and name in ANSWER_SETS:
            answers[name] = answer_figures(name, settings, args.answer_questions)
            print(name, "answers", json.dumps(answers[name]), flush=True)
    for name in args.sets or PAIR_SETS:
        if "dense" in args.modes and name in PAIR_SETS and (EVAL / name / "pairs.jsonl").exists():
            folder = EVAL / name
            # pairs only: evaluate() would also run the queries of PAWSX, which the table above has.
            from index.embedders.factory import create_embedder
            from search.evaluate import pair_spearman, read_jsonl

            data = read_jsonl(folder / "pairs.jsonl")[: args.limit]
            pairs[name] = pair_spearman(create_embedder(settings.embedder), data)
            print(name, "spearman", pairs[name], flush=True)
    if args.json:
        this = f"{' '.join(['python bench/quality.py', *sys.argv[1:]])} (commit {commit()})"
        run = {"commit": commit(), "command": " ".join(["python bench/quality.py", *sys.argv[1:]]),
               "date": dt.date.today().isoformat(),
               "runs": [*getattr(args, "earlier", {}).get("runs", []), this]}
        args.json.write_text(json.dumps({"run": run, "retrieval": rows, "answers": answers, "pairs": pairs},
                                        indent=2))
    write_markdown(args.out, rows, answers, pairs, settings, args, time.time() - started)
    return 0


def write_markdown(
    out: Path, rows: dict, answered: dict, pairs: dict, settings: IndexSettings, args: argparse.Namespace,
    seconds: float,
) -> None:
    earlier = getattr(args, "earlier", None)
    lines = [
        "# Retrieval quality",
        "",
        f"Measured {dt.date.today().isoformat()} at commit `{commit()}` with "
        f"`{' '.join(['python bench/quality.py', *sys.argv[1:]])}` ({seconds / 60:.0f} min on 2 cores)"
        + (", over the figures of earlier runs that it did not re-measure: "
           + "; ".join(f"`{r}`" for r in earlier.get("runs", [earlier.get("command", "?")]))
           if earlier else "")
        + f". Model `{settings.embedder.model}`, backend "
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
                digits = {"query_ms_p50": 1, "recall@5": 4}.get(c, 3)  # recall@5 is what ✓ / ✗ compares
                cell = f"{value:.{digits}f}"
                if c == "recall@5" and mode == "hybrid":
                    cell += " ✓" if value >= best else " ✗"
                cells.append(cell)
            lines.append(f"| {name} | {mode} | " + " | ".join(cells) + f" | {f['queries']} |")
    lines += [
        "",
        "✓ / ✗: hybrid recall@5 at least as good as the better single mode. How hybrid fuses the two lists,",
        "and the other fusions measured: docs/fusion.md. `query_ms_p50` is in-process `Engine.search` time",
        "of the run that measured the row, on a machine shared with other jobs (rows of different runs met",
        "different loads): docs/performance.md has the latency figures measured for that purpose.",
        "",
        "## Pair similarity (Spearman of cosine vs label)",
        "",
        "| set | spearman |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.4f} |" for name, value in pairs.items()]
    if answered:
        lines += [
            "",
            "## Answers (`semsearch ask`, extractive; see docs/answers.md)",
            "",
            "k 5, hybrid retrieval, the default confidence threshold. Over all the questions scored: a",
            "withheld (null) answer scores 0; `*_all`: the best sentence always given; `precision_answered`:",
            "answer_hit of the answered questions. Questions: the first that follow the slice the answer",
            "model was fitted on (`bench/fit_answer.py`), so none of them was seen in fitting.",
            "",
            "| set | questions | " + " | ".join(ANSWER_COLUMNS) + " |",
            "|---|---|" + "---|" * len(ANSWER_COLUMNS),
        ]
        lines += [f"| {name} | {f['first']}-{f['first'] + f['queries'] - 1} | "
                  + " | ".join(f"{f[c]:.3f}" for c in ANSWER_COLUMNS) + " |" for name, f in answered.items()]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n" + hand_written(out))


NOTES = "## Notes (written by hand)"


def hand_written(out: Path) -> str:
    """The page's hand-written notes, kept across runs (everything from the NOTES heading on)."""
    text = out.read_text() if out.exists() else ""
    at = text.find(NOTES)
    return "\n" + text[at:] if at >= 0 else ""


if __name__ == "__main__":
    sys.exit(main())
