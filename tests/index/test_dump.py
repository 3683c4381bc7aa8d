"""Export and import: a dump restores an index that answers exactly as the original, with no embedding."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.builder import IndexBuilder
from index.documents import Document
from index.dump import DumpError, export_index, import_index
from index.embedding_cache import EmbeddingCache
from index.generations import IndexDir
from search.engine import Engine
from tests.api.conftest import copy_index

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ["到2025年长三角研发投入强度的目标是多少", "成都超算中心周边聚集了多少个科技创新项目？",
             "新型智能算力供应中心", "Yangtze River Delta R&D intensity target", "2023年上海的GDP是多少？"]

# The import runs in a process where the embedder cannot be made, and must not even import a model library.
NO_MODEL = """
import sys
import index.builder, index.embedders.factory
def refuse(*args, **kwargs):
    raise AssertionError("the import tried to load the model")
index.embedders.factory.create_embedder = index.builder.create_embedder = refuse
from api.cli import main
code = main(sys.argv[1:])
loaded = [m for m in ("torch", "sentence_transformers", "transformers", "onnxruntime") if m in sys.modules]
if loaded:
    sys.exit(f"model libraries imported during the import: {loaded}")
sys.exit(code)
"""


def run_cli(*args: str, no_model: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, *(["-c", NO_MODEL] if no_model else ["-m", "api.cli"]), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def queries_of(engine: Engine) -> list[str]:
    """The questions above, and the opening words of every passage (so each passage is someone's target)."""
    passages = engine.snapshot().passages.all_passages()
    return QUESTIONS + [text[:24] for _pid, text, _h in passages]


def top10(engine: Engine, query: str, mode: str) -> list[tuple[Any, ...]]:
    return [(r.passage_id, r.doc_id, r.start, r.end, round(r.score, 5), r.text)
            for r in engine.search(query, k=10, mode=mode).results]


def assert_same_answers(original: Engine, restored: Engine) -> None:
    assert restored.info()["documents"] == original.info()["documents"]
    assert restored.info()["passages"] == original.info()["passages"]
    for query in queries_of(original):
        for mode in ("hybrid", "dense", "keyword"):
            assert top10(restored, query, mode) == top10(original, query, mode), (query, mode)
    for question in QUESTIONS[:3]:
        a, b = original.ask(question), restored.ask(question)
        assert (b.answer, b.answer_span, b.confidence) == (a.answer, a.answer_span, a.confidence)
    doc = original.documents()["documents"][0]["doc_id"]
    assert restored.document(doc) == original.document(doc)


def test_export_on_a_running_server_then_import_without_the_model(seed_index: Path, engine: Engine,
                                                                  tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api.server import create_app

    index = copy_index(seed_index, tmp_path)
    # The server runs in this process (writes from a loopback client), the export in a process of its own,
    # as beside `semsearch serve`.
    with TestClient(create_app(index), base_url="http://localhost", client=("127.0.0.1", 50000)) as client:
        # a write first, so the dump is of a generation the server made
        job = client.post("/documents?wait=120", json={"documents": [
            {"doc_id": "note-1", "title": "笔记", "text": "宜宾正举全市之力推进大学城建设。"}]}).json()
        assert job["state"] == "done", job
        exported = run_cli("export", "--index", str(index), str(tmp_path / "dump.tar"))
        assert exported.returncode == 0, exported.stderr
        live = client.get("/search", params={"q": "宜宾大学城", "k": 10}).json()["results"]
    imported = run_cli("import", str(tmp_path / "dump.tar"), "--index", str(tmp_path / "new"), no_model=True)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "nothing embedded" in imported.stdout

    restored = Engine.open(tmp_path / "new")
    assert [(r.passage_id, r.doc_id) for r in restored.search("宜宾大学城", k=10).results] == \
        [(r["passage_id"], r["doc_id"]) for r in live]
    assert_same_answers(Engine.open(index), restored)


def test_dump_is_readable_with_standard_tools_and_fills_the_embedding_cache(seed_index: Path, engine: Engine,
                                                                            tmp_path: Path) -> None:
    manifest = export_index(seed_index, tmp_path / "dump.tar")
    with tarfile.open(tmp_path / "dump.tar") as tar:
        names = tar.getnames()
        passages = [json.loads(line) for line in tar.extractfile("passages.jsonl")]  # type: ignore[union-attr]
        docs = {d["doc_id"]: d for d in map(json.loads, tar.extractfile("documents.jsonl"))}  # type: ignore
        vectors = np.load(io.BytesIO(tar.extractfile("vectors.npy").read()))  # type: ignore[union-attr]
        ids = np.load(io.BytesIO(tar.extractfile("ids.npy").read()))  # type: ignore[union-attr]
    assert names == ["manifest.json", "documents.jsonl", "passages.jsonl", "vectors.npy", "ids.npy",
                     "checksums.json"]
    assert manifest["model"] == engine.info()["model"] and vectors.shape == (len(passages), manifest["dim"])
    assert [p["passage_id"] for p in passages] == ids.tolist()
    for p in passages:  # offsets cite the document's text
        assert docs[p["doc_id"]]["text"][p["start"] : p["end"]] == p["text"]
    first = passages[0]
    assert np.allclose(vectors[0], engine.embedder.encode_passages([first["text"]])[0], atol=1e-4)

    summary = import_index(tmp_path / "dump.tar", tmp_path / "new")
    assert summary["passages"] == len(passages)
    cache = EmbeddingCache(tmp_path / "new", manifest["model"], manifest["dim"])
    try:
        assert len(cache.get([p["hash"] for p in passages])) == len({p["hash"] for p in passages})
    finally:
        cache.close()
    # a changed document whose passages are all known is re-indexed without embedding anything
    doc = docs[passages[0]["doc_id"]]
    changed = Document(doc_id=doc["doc_id"], title=doc["title"] + "（修订）", text=doc["text"],
                       paragraphs=[tuple(p) for p in doc["paragraphs"]], path=doc["path"])
    build = IndexBuilder(tmp_path / "new", embedder=engine.embedder).upsert([changed])
    assert build.updated == 1 and build.embedded == 0, build.to_dict()


def test_export_while_builds_publish_and_prune(seed_index: Path, engine: Engine, tmp_path: Path) -> None:
    """Generations published (and the old ones pruned) during an export never give a broken dump."""
    index = copy_index(seed_index, tmp_path)
    builder = IndexBuilder(index, embedder=engine.embedder)
    stop, first = threading.Event(), threading.Event()
    texts = ["宜宾正举全市之力推进大学城建设。", "宜宾大学城今年新增三所高校的校区。"]

    def write() -> None:
        n = 0
        while not stop.is_set():
            builder.upsert([Document.from_paragraphs("moving", [texts[n % 2]], title="移动")])
            first.set()
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert first.wait(120)
        for i in range(4):
            export_index(index, tmp_path / f"d{i}.tar")
            summary = import_index(tmp_path / f"d{i}.tar", tmp_path / f"new{i}")
            assert summary["documents"] == 3
    finally:
        stop.set()
        writer.join()
    assert int(IndexDir(index).current() or 0) > 2, "no generation was published during the exports"


def _rewrite(dump: Path, out: Path, member: str, change: Any) -> None:
    with tarfile.open(dump) as src, tarfile.open(out, "w") as dst:
        for info in src:
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == member:
                data = change(data)
                info.size = len(data)
            dst.addfile(info, io.BytesIO(data))


def test_damaged_dumps_other_models_and_full_targets_are_refused(seed_index: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump.tar"
    export_index(seed_index, dump)
    flipped = tmp_path / "flipped.tar"
    _rewrite(dump, flipped, "vectors.npy", lambda b: b[:-8] + bytes(8))
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(dump.read_bytes()[: dump.stat().st_size * 2 // 3])
    other_model = tmp_path / "other.tar"
    _rewrite(dump, other_model, "manifest.json", lambda b: b)  # the same dump, checked against another model
    not_a_tar = tmp_path / "notes.tar"
    not_a_tar.write_text("这不是一个归档文件")

    cases = [
        (flipped, {}, "checksum of vectors.npy does not match"),
        (truncated, {}, "damaged"),
        (not_a_tar, {}, "not a semsearch dump or is damaged"),
        (other_model, {"model": "BAAI/bge-small-zh-v1.5"}, "was made with model 'multilingual-e5-small'"),
    ]
    for i, (path, options, message) in enumerate(cases):
        target = tmp_path / f"target{i}"
        with pytest.raises(DumpError, match=message):
            import_index(path, target, **options)
        assert not target.exists(), f"{path.name} left a folder behind"

    with pytest.raises(DumpError, match="does not exist"):
        import_index(tmp_path / "no-such.tar", tmp_path / "target-missing")
    with pytest.raises(DumpError, match="is a folder"):
        export_index(seed_index, tmp_path)
    import_index(dump, tmp_path / "full")
    with pytest.raises(DumpError, match="is not empty"):
        import_index(dump, tmp_path / "full")
    result = run_cli("import", str(flipped), "--index", str(tmp_path / "cli"))
    assert result.returncode == 1 and "checksum of vectors.npy does not match" in result.stderr, result.stderr
