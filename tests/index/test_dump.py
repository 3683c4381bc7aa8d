"""Export and import: a dump restores an index that answers exactly as the original, with no embedding."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.builder import IndexBuilder
from index.documents import Document, text_hash
from index.dump import DumpError, export_index, import_index
from index.embedding_cache import EmbeddingCache
from index.generations import IndexDir
from index.stores.factory import open_sentence_store
from index.stores.passages import PassageStore
from index.stores.sentence_store import SentenceStore, passage_sentences
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


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 5)


def top10(engine: Engine, query: str, mode: str) -> list[tuple[Any, ...]]:
    """The top 10 as a list to compare, with the dense evidence (the passage's cosine averaged with its best
    sentence's, and that sentence's): a restored index without, or with other, sentence vectors differs."""
    return [(r.passage_id, r.doc_id, r.start, r.end, round(r.score, 5), _rounded(r.dense_score),
             _rounded(r.sentence_score), r.text)
            for r in engine.search(query, k=10, mode=mode).results]


def sentence_store(index: Path) -> SentenceStore | None:
    folder = IndexDir(index)
    name = folder.current()
    assert name is not None
    return open_sentence_store(folder, name, folder.manifest(name))


def assert_same_sentences(original: Path, restored: Path) -> None:
    a, b = sentence_store(original), sentence_store(restored)
    assert a is not None and b is not None and a.sentence_count > 0
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.offsets, b.offsets)
    assert b.vectors.dtype == np.float16 and np.array_equal(a.vectors, b.vectors)


def assert_same_answers(original: Engine, restored: Engine) -> None:
    """Every query's top 10 the same in every mode (0 differences), and the same answers and documents."""
    assert restored.info()["documents"] == original.info()["documents"]
    assert restored.info()["passages"] == original.info()["passages"]
    differ = [(query, mode) for query in queries_of(original) for mode in ("hybrid", "dense", "keyword")
              if top10(restored, query, mode) != top10(original, query, mode)]
    assert differ == [], f"{len(differ)} top-10 lists differ, e.g. {differ[:3]}"
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
    assert_same_sentences(index, tmp_path / "new")  # the seed index is built with sentence vectors
    assert_same_answers(Engine.open(index), restored)


def test_export_and_import_refuse_the_milvus_store(seed_index: Path, tmp_path: Path) -> None:
    """With the Milvus store, --index is only a folder of caches (here an old copy of the index): its
    export would be a backup without the writes made to Milvus, so both commands refuse and say why."""
    index = copy_index(seed_index, tmp_path)
    milvus = ("--store", "milvus", "--milvus-uri", "http://127.0.0.1:9")
    exported = run_cli("export", "--index", str(index), str(tmp_path / "dump.tar"), *milvus)
    assert exported.returncode == 1 and "this index is in Milvus" in exported.stderr, exported.stderr
    assert not (tmp_path / "dump.tar").exists()
    assert run_cli("export", "--index", str(index), str(tmp_path / "dump.tar")).returncode == 0
    imported = run_cli("import", str(tmp_path / "dump.tar"), "--index", str(tmp_path / "new"), *milvus)
    assert imported.returncode == 1 and "semsearch migrate" in imported.stderr, imported.stderr
    assert not (tmp_path / "new").exists()


def test_dump_is_readable_with_standard_tools_and_fills_the_embedding_cache(seed_index: Path, engine: Engine,
                                                                            tmp_path: Path) -> None:
    manifest = export_index(seed_index, tmp_path / "dump.tar")
    with tarfile.open(tmp_path / "dump.tar") as tar:
        names = tar.getnames()
        passages = [json.loads(line) for line in tar.extractfile("passages.jsonl")]  # type: ignore[union-attr]
        docs = {d["doc_id"]: d for d in map(json.loads, tar.extractfile("documents.jsonl"))}  # type: ignore
        vectors = np.load(io.BytesIO(tar.extractfile("vectors.npy").read()))  # type: ignore[union-attr]
        ids = np.load(io.BytesIO(tar.extractfile("ids.npy").read()))  # type: ignore[union-attr]
        offsets = np.load(io.BytesIO(tar.extractfile("sentence_offsets.npy").read()))  # type: ignore
        sentences = np.load(io.BytesIO(tar.extractfile("sentence_vectors.npy").read()))  # type: ignore
        sums = json.loads(tar.extractfile("checksums.json").read())  # type: ignore[union-attr]
    assert names == ["manifest.json", "documents.jsonl", "passages.jsonl", "vectors.npy", "ids.npy",
                     "sentence_offsets.npy", "sentence_vectors.npy", "checksums.json"]
    assert set(sums) == set(names) - {"checksums.json"}
    assert manifest["model"] == engine.info()["model"] and vectors.shape == (len(passages), manifest["dim"])
    assert [p["passage_id"] for p in passages] == ids.tolist()
    for p in passages:  # offsets cite the document's text
        assert docs[p["doc_id"]]["text"][p["start"] : p["end"]] == p["text"]
    first = passages[0]
    assert np.allclose(vectors[0], engine.embedder.encode_passages([first["text"]])[0], atol=1e-4)
    # the sentence vectors of passage i are rows offsets[i]:offsets[i+1], in passage_sentences' order
    assert offsets.dtype == np.int64 and sentences.dtype == np.float16 and len(offsets) == len(ids) + 1
    assert offsets[-1] == len(sentences) == manifest["sentences"] > 0
    i = next(i for i, p in enumerate(passages) if passage_sentences(p["text"]))
    texts = passage_sentences(passages[i]["text"])
    assert offsets[i + 1] - offsets[i] == len(texts)
    assert np.allclose(sentences[offsets[i] : offsets[i + 1]], engine.embedder.encode_passages(texts),
                       atol=2e-3)  # float16

    summary = import_index(tmp_path / "dump.tar", tmp_path / "new")
    assert summary["passages"] == len(passages)
    assert summary["sentences"] == manifest["sentences"]
    cache = EmbeddingCache(tmp_path / "new", manifest["model"], manifest["dim"])
    try:
        assert len(cache.get([p["hash"] for p in passages])) == len({p["hash"] for p in passages})
        text_hashes = {text_hash(t) for p in passages for t in passage_sentences(p["text"])}
        assert len(cache.get(list(text_hashes))) == len(text_hashes)
    finally:
        cache.close()
    # a changed document whose passages are all known is re-indexed without embedding anything
    doc = docs[passages[0]["doc_id"]]
    changed = Document(doc_id=doc["doc_id"], title=doc["title"] + "（修订）", text=doc["text"],
                       paragraphs=[tuple(p) for p in doc["paragraphs"]], path=doc["path"])
    build = IndexBuilder(tmp_path / "new", embedder=engine.embedder).upsert([changed])
    assert build.updated == 1 and build.embedded == 0 and build.sentences_embedded == 0, build.to_dict()
    # A rebuild carries nothing over from the imported generation: every passage and sentence vector comes
    # from the cache the import filled, and they are the dump's own.
    everything = [Document(doc_id=d["doc_id"], title=d["title"], text=d["text"], path=d["path"],
                           paragraphs=[tuple(p) for p in d["paragraphs"]]) for d in docs.values()]
    build = IndexBuilder(tmp_path / "new", embedder=engine.embedder, rebuild=True).upsert(everything)
    assert build.embedded == 0 and build.sentences_embedded == 0 and build.sentences_reused > 0, \
        build.to_dict()
    rebuilt = sentence_store(tmp_path / "new")
    assert rebuilt is not None and rebuilt.sentence_count == len(sentences)
    dumped = {p["text"]: sentences[offsets[i] : offsets[i + 1]] for i, p in enumerate(passages)}
    folder = IndexDir(tmp_path / "new")
    store = PassageStore.open(folder.path(folder.current() or ""))
    try:
        # passage ids go on from the imported ones, so the passages are matched by their text
        for pid, text, _h in store.all_passages():
            assert np.array_equal(rebuilt.of([pid])[pid], dumped[text]), pid
    finally:
        store.close()


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

    # Two imports into one new folder: this one found it empty, the other filled it before this one took
    # the lock. This one used to import into it as well.
    import index.dump as dump_module

    real_read, target = dump_module.read_dump_manifest, tmp_path / "raced"

    def the_other_import_finishes(path: Path) -> dict[str, Any]:
        dump_module.read_dump_manifest = real_read  # the other import reads as it would
        import_index(path, target)
        return real_read(path)

    dump_module.read_dump_manifest = the_other_import_finishes
    try:
        with pytest.raises(DumpError, match="is not empty"):
            import_index(dump, target)
    finally:
        dump_module.read_dump_manifest = real_read
    assert IndexDir(target).published() == ["000001"] and not list(target.glob(".import-*"))
    assert Engine.open(target).search("长三角", k=1).results, "the other import is kept whole"
    result = run_cli("import", str(flipped), "--index", str(tmp_path / "cli"))
    assert result.returncode == 1 and "checksum of vectors.npy does not match" in result.stderr, result.stderr


def test_round_trip_carries_the_sentence_vectors(seed_index: Path, engine: Engine, tmp_path: Path) -> None:
    """An index built with sentence vectors comes back with the same ones, so its dense side (which scores a
    passage by its own cosine and its best sentence's) ranks and scores exactly as the exported one."""
    manifest = export_index(seed_index, tmp_path / "dump.tar")
    assert manifest["settings"]["sentence_vectors"] and manifest["sentences"] > 0
    import_index(tmp_path / "dump.tar", tmp_path / "new")

    assert_same_sentences(seed_index, tmp_path / "new")
    folder = IndexDir(tmp_path / "new")
    name = folder.current()
    assert name is not None
    restored_manifest = folder.manifest(name)
    assert restored_manifest.settings["sentence_vectors"] is True
    assert restored_manifest.vector_index["sentences"] == manifest["sentences"]
    # written before publishing: the manifest's file table holds the store, and it verifies
    assert {"sentences/ids.npy", "sentences/offsets.npy", "sentences/vectors.npy"} <= set(
        restored_manifest.files or {})
    folder.verify(name, checksums=True)

    restored = Engine.open(tmp_path / "new")
    with_sentence = 0
    for query in queries_of(engine):
        for mode in ("dense", "hybrid"):
            got, want = top10(restored, query, mode), top10(engine, query, mode)
            assert got == want, (query, mode)
            with_sentence += sum(row[6] is not None for row in want)
    assert with_sentence > 0, "no result had a sentence score: the comparison did not cover sentences"


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def _from_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data))


def _repack(dump: Path, out: Path, changes: dict[str, Callable[[bytes], bytes | None]],
            *, resum: bool = True) -> None:
    """Copy `dump` with members changed (a change returning None drops the member). `resum`: write
    checksums.json afresh, as a faulty exporter would, so the import's own checks must find the problem."""
    with tarfile.open(dump) as src:
        members = {info.name: src.extractfile(info).read() for info in src}  # type: ignore[union-attr]
    for name, change in changes.items():
        data = change(members[name])
        if data is None:
            del members[name]
        else:
            members[name] = data  # in its place: the order stays the exporter's
    if resum:
        members.pop("checksums.json")
        sums = {m: hashlib.sha256(d).hexdigest() for m, d in members.items()}
        members["checksums.json"] = json.dumps(sums).encode()  # last, as the exporter writes it
    with tarfile.open(out, "w") as dst:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))


def test_damaged_or_misaligned_sentence_vectors_are_refused(seed_index: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump.tar"
    manifest = export_index(seed_index, dump)
    count = manifest["sentences"]

    def offsets(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[bytes], bytes]:
        return lambda data: _npy(change(_from_npy(data)))

    def swap_two(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        k = int(np.flatnonzero(np.diff(a) > 0)[0]) + 1  # a passage with sentences: a[k] > a[k - 1]
        a[k - 1], a[k] = a[k], a[k - 1]
        return a

    cases: list[tuple[str, dict[str, Callable[[bytes], bytes | None]], bool, str]] = [
        ("unaligned", {"sentence_offsets.npy": offsets(lambda a: a[1:])}, True,
         rf"sentence_offsets.npy has {manifest['passages']} offsets, not aligned with the "
         rf"{manifest['passages']} passages of ids.npy"),
        ("short", {"sentence_vectors.npy": offsets(lambda v: v[:-1])}, True,
         rf"sentence_offsets.npy ends at {count}, not at the {count - 1} rows of sentence_vectors.npy"),
        ("falling", {"sentence_offsets.npy": offsets(swap_two)}, True, "does not start at 0 and only rise"),
        ("float32", {"sentence_vectors.npy": offsets(lambda v: v.astype(np.float32))}, True,
         "sentence_vectors.npy is float32"),
        ("one-member", {"sentence_vectors.npy": lambda _: None}, True,
         "holds sentence_offsets.npy but not sentence_vectors.npy"),
        ("lost-member", {"sentence_vectors.npy": lambda _: None}, False,
         "sentence_vectors.npy missing"),
        ("flipped", {"sentence_vectors.npy": lambda b: b[:-8] + bytes(8)}, False,
         "checksum of sentence_vectors.npy does not match"),
    ]
    for label, changes, resum, message in cases:
        bad = tmp_path / f"{label}.tar"
        _repack(dump, bad, changes, resum=resum)
        target = tmp_path / f"target-{label}"
        with pytest.raises(DumpError, match=message) as refused:
            import_index(bad, target)
        assert str(bad) in str(refused.value), label  # the message names the dump
        assert not target.exists(), f"{label} left a folder behind"

    # into an empty folder made beforehand (kept, as it was the caller's): nothing is published in it
    target = tmp_path / "made-before"
    target.mkdir()
    with pytest.raises(DumpError, match="not aligned"):
        import_index(tmp_path / "unaligned.tar", target)
    assert IndexDir(target).current() is None and not IndexDir(target).published()


def test_a_dump_without_sentence_vectors_imports_with_passage_vectors_only(seed_index: Path, engine: Engine,
                                                                          tmp_path: Path) -> None:
    """A dump written before sentence vectors (no sentence members, none in checksums.json) still imports:
    as an index without them, whose settings say so, and whose dense side ranks by passage vectors."""
    dump, old = tmp_path / "dump.tar", tmp_path / "old.tar"
    export_index(seed_index, dump)

    def old_manifest(data: bytes) -> bytes:
        manifest = json.loads(data)
        del manifest["sentences"]
        return json.dumps(manifest).encode()

    _repack(dump, old, {"sentence_offsets.npy": lambda _: None, "sentence_vectors.npy": lambda _: None,
                        "manifest.json": old_manifest})
    with tarfile.open(old) as tar:
        assert not any(n.startswith("sentence") for n in tar.getnames())
    summary = import_index(old, tmp_path / "new")
    assert summary["sentences"] == 0 and summary["passages"] == engine.info()["passages"]

    folder = IndexDir(tmp_path / "new")
    name = folder.current()
    assert name is not None
    manifest = folder.manifest(name)
    assert manifest.settings["sentence_vectors"] is False and "sentences" not in manifest.vector_index
    assert not SentenceStore.exists(folder.path(name))

    # The reference: the exported index with its sentence vectors set aside (this engine's own snapshot,
    # never published), so its dense side is the passage vectors' alone too.
    reference = Engine.open(seed_index)
    reference.snapshot().sentences = None
    restored = Engine.open(tmp_path / "new")
    for query in queries_of(engine):
        for mode in ("dense", "hybrid", "keyword"):
            got = top10(restored, query, mode)
            assert got == top10(reference, query, mode), (query, mode)
            assert all(row[6] is None for row in got)  # no sentence scores


def test_round_trip_keeps_the_pages_of_a_pdf(seed_index: Path, tmp_path: Path) -> None:
    index = copy_index(seed_index, tmp_path / "copy")
    glaciers = "青藏高原的冰川在过去三十年里持续退缩，观测站记录了每年的变化。" * 12
    lakes = "与此同时，高原湖泊的面积扩大了三成，牧民的草场被湖水淹没。" * 12
    paged = Document.from_paragraphs("report.pdf", [glaciers, lakes], title="高原报告")
    paged.pages = [0, paged.paragraphs[1][0]]
    IndexBuilder(index).upsert([paged])
    export_index(index, tmp_path / "dump.tar")
    import_index(tmp_path / "dump.tar", tmp_path / "new")
    restored = Engine.open(tmp_path / "new")
    assert restored.document("report.pdf")["pages"] == paged.pages
    assert restored.document("report.pdf")["content_hash"] == paged.content_hash()
    assert restored.search("高原湖泊的面积扩大了三成", k=1).results[0].page == 2
    assert restored.document("003_07e0a4d71f185c6b.txt")["pages"] == []


def test_an_imported_index_of_several_folders_keeps_their_ids(tmp_path: Path) -> None:
    """An index of three folders (`docs-2/…`, `docs-3/…` beside bare ids) exported and imported: indexing
    the folders again into the import changes nothing, and no id comes to name another file."""
    folders = [tmp_path / "main", tmp_path / "a" / "docs", tmp_path / "b" / "docs"]
    for i, folder in enumerate(folders):
        folder.mkdir(parents=True)
        text = f"第{i}个文件夹的说明：宜宾正举全市之力推进大学城建设{i}。"
        (folder / "readme.txt").write_text(text, encoding="utf-8")
    index = tmp_path / "index"
    for folder in folders:
        IndexBuilder(index).index_paths([folder])
    before = {d["doc_id"]: d["path"] for d in Engine.open(index).documents()["documents"]}
    assert set(before) == {"readme.txt", "docs/readme.txt", "docs-2/readme.txt"}
    export_index(index, tmp_path / "dump.tar")
    import_index(tmp_path / "dump.tar", tmp_path / "new")
    for folder in folders:
        again = IndexBuilder(tmp_path / "new").index_paths([folder])
        assert again.added == again.deleted == 0 and again.unchanged == 1, folder
    after = {d["doc_id"]: d["path"] for d in Engine.open(tmp_path / "new").documents()["documents"]}
    assert after == before


def test_a_folder_left_by_an_interrupted_import_says_so(seed_index: Path, tmp_path: Path) -> None:
    """A killed `import` leaves its scratch folder, a half-written generation and the lock, and no index:
    the retry is told that, and how to go on, rather than that the folder is an index's."""
    export_index(seed_index, tmp_path / "dump.tar")
    target = tmp_path / "new"
    (target / ".import-k1ll3d").mkdir(parents=True)
    (target / "generations" / "000001.tmp").mkdir(parents=True)
    (target / "write.lock").write_text("12345\n")
    with pytest.raises(DumpError, match="interrupted import.*rm -r"):
        import_index(tmp_path / "dump.tar", target)
    (target / "generations" / "000001.tmp").rmdir()
    import_index(tmp_path / "dump.tar", tmp_path / "elsewhere")
    with pytest.raises(DumpError, match="not empty; import into a new folder"):
        import_index(tmp_path / "dump.tar", tmp_path / "elsewhere")
