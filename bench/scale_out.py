"""FAISS against milvus-lite on the same corpus, and Ray embedding against local: the table of
docs/scale-out.md. Run it alone on a quiet machine (it times things).

    python bench/scale_out.py ../shared/eval/cmrc2018-dev ../shared/eval/drcd-dev
    python bench/scale_out.py ../shared/eval/xquad/zh --docs 30 --queries 20          # a quick check
    python bench/scale_out.py SET --ray 127.0.0.1:6390   # also Ray, on a cluster you started (see the doc)

For each set: the corpus (its first --docs documents) is indexed into a fresh folder and into a fresh
collection on a `milvus-lite server` this script starts on 127.0.0.1 (or --milvus-uri), each build
embedding everything itself; then recall@5 and query p50/p95 (hybrid, the default mode) over --queries
questions. With --ray, a third build embeds on the cluster; passages/s are compared with the local build.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.builder import IndexBuilder  # noqa: E402
from index.config import IndexSettings  # noqa: E402
from index.embedders.factory import create_embedder  # noqa: E402
from index.milvus_index import MilvusIndex  # noqa: E402
from search.engine import Engine  # noqa: E402
from search.evaluate import read_jsonl, retrieval_metrics  # noqa: E402
from tests.backends.conftest import start_milvus, stop  # noqa: E402


def subset(folder: Path, docs: int | None, queries: int | None, work: Path) -> tuple[Path, list[dict]]:
    lines = (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    lines = [line for line in lines if line.strip()][:docs] if docs else lines
    corpus = work / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    kept = {json.loads(line)["doc_id"] for line in lines}
    asked = [q for q in read_jsonl(folder / "queries.jsonl")
             if set(q.get("doc_ids") or [q["doc_id"]]) & kept]
    return corpus, asked[:queries] if queries else asked


def measure(engine: Engine, queries: list[dict]) -> dict[str, float]:
    engine.search(queries[0]["question"], k=5)  # the first query loads what is loaded lazily
    m = retrieval_metrics(engine, queries, mode=None, k=10)
    return {"recall@5": round(m["recall@5"], 3), "p50_ms": round(m["query_ms_p50"], 1),
            "p95_ms": round(m["query_ms_p95"], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--docs", type=int, help="only the first N documents of each corpus")
    parser.add_argument("--queries", type=int, default=500, help="questions per set (default 500)")
    parser.add_argument("--milvus-uri", help="a running Milvus server instead of a milvus-lite one")
    parser.add_argument("--ray", help="also embed on this Ray cluster (host:port of its head)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="scale-out-"))
    proc = None
    uri = args.milvus_uri
    if uri is None:
        proc, uri = start_milvus(work / "milvus")
    embedder = create_embedder(IndexSettings.from_env().embedder)
    rows = []
    try:
        for folder in args.sets:
            tmp = work / folder.name
            tmp.mkdir()
            corpus, queries = subset(folder, args.docs, args.queries, tmp)
            row: dict[str, object] = {"set": folder.name, "queries": len(queries)}

            t0 = time.perf_counter()
            local = IndexBuilder(tmp / "faiss", embedder=embedder).index_paths([corpus])
            row["faiss_index_s"] = round(time.perf_counter() - t0, 1)
            row["passages"] = local.passages
            row["local_passages_per_s"] = round(local.passages_per_s, 1)
            faiss = Engine(tmp / "faiss")
            faiss._embedder = embedder
            row |= {f"faiss_{k}": v for k, v in measure(faiss, queries).items()}

            location = MilvusIndex(uri, f"bench_{uuid.uuid4().hex[:10]}", root=tmp / "milvus-local")
            t0 = time.perf_counter()
            location.builder(embedder=embedder).index_paths([corpus])
            row["milvus_index_s"] = round(time.perf_counter() - t0, 1)
            milvus = Engine(location)
            milvus._embedder = embedder
            row |= {f"milvus_{k}": v for k, v in measure(milvus, queries).items()}
            location.drop()

            if args.ray:
                on_ray = IndexBuilder(tmp / "ray", embedder=embedder, ray=args.ray).index_paths([corpus])
                row["ray_passages_per_s"] = round(on_ray.passages_per_s, 1)
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    finally:
        if proc is not None:
            stop(proc)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
