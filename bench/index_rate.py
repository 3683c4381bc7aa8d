"""What sentence vectors cost at index time: the same documents indexed with and without them, side by side.

    python bench/index_rate.py                    # 300 news documents, 2 rounds, prints a markdown row
    python bench/index_rate.py --docs 100 --rounds 1

Each round indexes the first `--docs` documents of ../shared/eval/news/antiterror-train into two fresh
index folders (new embedding caches, so everything is embedded), one with `SEMSEARCH_SENTENCE_VECTORS`
off and one with it on, in alternating order; the model is loaded once before. Reported: the builder's
own passages/s (embedding time of passages and their sentences), the wall time of the whole build, the
sentences embedded, the bytes of the generation. Run it alone on the machine (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.builder import IndexBuilder  # noqa: E402
from index.config import IndexSettings  # noqa: E402
from index.embedders.factory import create_embedder  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval" / "news" / "antiterror-train"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not (EVAL / "corpus.jsonl").exists():
        print(f"no news set at {EVAL}", file=sys.stderr)
        return 2
    lines = (EVAL / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[: args.docs]
    settings = IndexSettings.from_env({})
    embedder = create_embedder(settings.embedder)
    embedder.encode_passages(["预热"])  # the model loads before any timing
    figures: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="index-rate-") as tmp_name:
        tmp = Path(tmp_name)
        corpus = tmp / "corpus.jsonl"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for round_ in range(args.rounds):
            for sentences in ((False, True) if round_ % 2 == 0 else (True, False)):
                folder = tmp / f"index-{round_}-{int(sentences)}"
                chosen = IndexSettings.from_env({})
                chosen.sentence_vectors = sentences
                started = time.perf_counter()
                summary = IndexBuilder(folder, chosen, embedder=embedder).index_paths([corpus])
                wall = time.perf_counter() - started
                generation = next((folder / "generations").iterdir())
                size = sum(f.stat().st_size for f in generation.rglob("*") if f.is_file())
                figures[sentences].append({
                    "passages": summary.passages, "passages_per_s": summary.passages_per_s, "wall_s": wall,
                    "sentences": summary.sentences_embedded, "bytes": size,
                })
                print(f"round {round_ + 1} sentence vectors {'on ' if sentences else 'off'}: "
                      f"{summary.passages} passages, {summary.passages_per_s:.1f} passages/s, {wall:.1f} s "
                      f"wall, {summary.sentences_embedded} sentences, {size / 1e6:.1f} MB", flush=True)
                shutil.rmtree(folder)
                load.append(os.getloadavg()[0])
    off, on = figures[False], figures[True]
    rate_off = statistics.median(f["passages_per_s"] for f in off)
    rate_on = statistics.median(f["passages_per_s"] for f in on)
    wall_off = statistics.median(f["wall_s"] for f in off)
    wall_on = statistics.median(f["wall_s"] for f in on)
    print(json.dumps({"off": off, "on": on, "load": load}, indent=1))
    print("\n| sentence vectors | passages | passages/s (median) | build s | sentences | generation MB |")
    print("|---|---|---|---|---|---|")
    for label, rows, rate, wall in (("off", off, rate_off, wall_off), ("on", on, rate_on, wall_on)):
        print(f"| {label} | {rows[0]['passages']} | {rate:.1f} | {wall:.1f} | {rows[0]['sentences']} | "
              f"{rows[0]['bytes'] / 1e6:.1f} |")
    print(f"\non/off: passages/s {rate_on / rate_off:.2f}x, wall {wall_on / wall_off:.2f}x; load "
          f"{min(load):.1f}-{max(load):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
