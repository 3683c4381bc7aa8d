"""Peak memory of reading and chunking one file of a single huge line (no embedding).

    /usr/bin/time -v python bench/one_line_file.py --mb 20     # "Maximum resident set size"

Writes a file of `--mb` megabytes of Chinese prose without a newline (sentences cut from the default
corpus) to a temporary folder, reads it as `semsearch index` does and chunks it with the real tokenizer
(the model is loaded too, as in a build: about 1.4 GB before any file is read). Prints the passages, the
seconds and the peak resident memory. The figures are in docs/reliability.md ("Failures found and fixed").
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.builder import IndexBuilder  # noqa: E402
from index.loaders import load_documents  # noqa: E402


def one_line(path: Path, megabytes: float) -> None:
    source = (ROOT / "data" / "003_07e0a4d71f185c6b.txt").read_text(encoding="utf-8").replace("\n", "")
    rng = random.Random(0)
    parts, size = [], 0
    while size < megabytes * 1e6:
        start = rng.randrange(0, len(source) - 200)
        parts.append(source[start : start + 200])
        size += len(parts[-1].encode("utf-8"))
    path.write_text("".join(parts), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0, help="size of the file in megabytes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "one-line.txt"
        one_line(file, args.mb)
        builder = IndexBuilder(Path(tmp) / "index")
        builder.embedder.count_tokens(["预热"])  # the model loaded first, as in a build
        loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        chunks = [chunk for _, doc in load_documents([file]) for chunk in builder._chunk(doc)]
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{args.mb:g} MB, one line: {len(chunks)} passages in {seconds:.1f} s; "
              f"peak RSS {peak:.0f} MB ({loaded:.0f} MB with the model loaded, before the file)")


if __name__ == "__main__":
    main()
