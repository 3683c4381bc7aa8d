"""Export on a running server, import into a new folder, compare every question's top 10.

    python bench/dump_roundtrip.py ../shared/eval/xquad/zh [--limit N]

The development set's index is the eval cache's (`semsearch eval` builds it once); a copy of it is served
by a live `semsearch serve`, exported with `semsearch export` while the server runs, and imported with
`semsearch import` in a process where the embedder cannot be made (tests/index/test_dump.py's guard).
Then every question of the set is searched in the original and the restored index, in each mode.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.config import IndexSettings  # noqa: E402
from search.engine import Engine  # noqa: E402
from search.evaluate import eval_index, read_jsonl  # noqa: E402
from tests.api.conftest import copy_index, start_server, stop_server  # noqa: E402
from tests.index.test_dump import run_cli, top10  # noqa: E402

MODES = ("hybrid", "dense", "keyword")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    index, _rate = eval_index(args.folder, IndexSettings.from_env())
    questions = [q["question"] for q in read_jsonl(args.folder / "queries.jsonl")][: args.limit]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        served = copy_index(index, tmp)
        server = start_server(served, tmp / "server.log")
        try:
            t0 = time.perf_counter()
            exported = run_cli("export", "--index", str(served), str(tmp / "dump.tar"))
            export_s = time.perf_counter() - t0
        finally:
            stop_server(server)
        assert exported.returncode == 0, exported.stderr
        t0 = time.perf_counter()
        imported = run_cli("import", str(tmp / "dump.tar"), "--index", str(tmp / "new"), no_model=True)
        import_s = time.perf_counter() - t0
        assert imported.returncode == 0, imported.stdout + imported.stderr
        original, restored = Engine.open(served), Engine.open(tmp / "new")
        restored._embedder = original.embedder  # the same loaded model for both (the factory shares it too)
        differ = {m: 0 for m in MODES}
        for q in questions:
            for mode in MODES:
                differ[mode] += top10(original, q, mode) != top10(restored, q, mode)
        size_mb = (tmp / "dump.tar").stat().st_size / 1e6
        print(json.dumps({
            "set": str(args.folder), "questions": len(questions), "documents": original.info()["documents"],
            "passages": original.info()["passages"], "dump_mb": round(size_mb, 1),
            "export_s": round(export_s, 1), "import_s_no_model": round(import_s, 1),
            "top10_differing": differ,
        }))
        shutil.rmtree(tmp / "new")
    return 0 if not any(differ.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
