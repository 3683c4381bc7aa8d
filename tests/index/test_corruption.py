"""Generations have an identity that is never reused, and the embedding cache only ever saves work."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from index.builder import IndexBuilder, SettingsMismatch
from index.config import IndexSettings
from search.engine import Engine


def _corpus(folder: Path, docs: dict[str, str]) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_an_index_removed_and_rebuilt_is_picked_up(tmp_path: Path) -> None:
    index = tmp_path / "index"
    one = _corpus(tmp_path / "one", {"old.txt": "成都超算中心为西部地区提供算力支撑。"})
    IndexBuilder(index).index_paths([one])
    engine = Engine.open(index)  # as a running server holds it
    before = engine.search("超算中心", k=3)
    assert [r.doc_id for r in before.results] == ["old.txt"]

    shutil.rmtree(index)
    two = _corpus(tmp_path / "two", {"new.txt": "宜宾正举全市之力推进大学城和超算中心建设。"})
    IndexBuilder(index).index_paths([two])
    after = engine.search("超算中心", k=3)  # the same query: not answered from the cache of the old index
    assert after.generation == before.generation == "000001"
    assert [r.doc_id for r in after.results] == ["new.txt"]
    assert [d["doc_id"] for d in engine.documents()["documents"]] == ["new.txt"]


def test_a_cached_vector_of_the_wrong_length_is_embedded_again(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c", {"a.txt": "长三角地区研发投入强度的目标是到2025年达到百分之三以上。"})
    index = tmp_path / "index"
    IndexBuilder(index).index_paths([corpus])
    with sqlite3.connect(index / "embeddings.sqlite") as conn:
        conn.execute("UPDATE vectors SET vector = ?", (np.ones(7, dtype=np.float32).tobytes(),))
    summary = IndexBuilder(index, rebuild=True).index_paths([corpus])
    assert summary.embedded == 1 and summary.reused == 0
    assert Engine.open(index).search("研发投入强度", k=1, mode="dense").results[0].doc_id == "a.txt"


def test_rebuild_builds_afresh_from_the_paths_reusing_the_cache(tmp_path: Path) -> None:
    first = _corpus(tmp_path / "first", {"a.txt": "成都超算中心为西部地区提供算力支撑。"})
    index = tmp_path / "index"
    IndexBuilder(index).index_paths([first])
    second = _corpus(
        tmp_path / "second", {"b.txt": "成都超算中心为西部地区提供算力支撑。", "c.txt": "宜宾建大学城。"}
    )

    summary = IndexBuilder(index, rebuild=True).index_paths([second])
    assert (summary.added, summary.deleted, summary.reused, summary.embedded) == (2, 0, 1, 1)
    engine = Engine.open(index)
    assert sorted(d["doc_id"] for d in engine.documents()["documents"]) == ["b.txt", "c.txt"]
    assert engine.info()["generation"] == "000002"

    # another model needs --rebuild, and the message says so with a command that exists
    other = IndexSettings.from_env()
    other.embedder.model = "some/other-model"
    with pytest.raises(SettingsMismatch, match="semsearch index --rebuild"):
        IndexBuilder(index, other)


def test_writes_through_the_api_repair_what_they_can_and_never_publish_a_loss(tmp_path: Path) -> None:
    from index.documents import Document
    from index.generations import IndexDamaged

    docs = {"a.txt": "成都超算中心为西部地区提供算力支撑。", "b.txt": "长三角地区研发投入强度目标。"}
    corpus, index = _corpus(tmp_path / "c", docs), tmp_path / "index"
    IndexBuilder(index).index_paths([corpus])
    generation = index / "generations" / "000001"
    note = Document.from_paragraphs("note-1", ["宜宾正举全市之力推进大学城建设。"], title="笔记")

    # only the vector file damaged: the documents are kept, the vectors rebuilt from the cache
    (generation / "vectors.faiss").write_bytes(b"\0" * 10)
    summary = IndexBuilder(index).upsert([note])
    assert summary.repaired and summary.reused == 2 and summary.embedded == 1
    engine = Engine.open(index)
    assert engine.info()["documents"] == 3
    assert engine.search("超算中心", k=1, mode="dense").results[0].doc_id == "a.txt"

    # nothing intact left: an API write or delete is refused, naming the file, and publishes nothing
    current = (index / "CURRENT").read_text()
    for name in ("000001", "000002"):
        (index / "generations" / name / "passages.sqlite").write_bytes(b"garbage")
    with pytest.raises(IndexDamaged, match="passages.sqlite.*semsearch index"):
        IndexBuilder(index).upsert([note])
    with pytest.raises(IndexDamaged, match="passages.sqlite"):
        IndexBuilder(index).delete(["a.txt"])
    assert (index / "CURRENT").read_text() == current
    # the files are there to rebuild from; the API's document is gone with the generations that held it
    assert IndexBuilder(index).index_paths([corpus]).repaired
    assert Engine.open(index).info()["documents"] == 2


def test_a_first_build_publishing_is_not_taken_for_damage(tmp_path: Path) -> None:
    """The first build renames its generation into place before it writes CURRENT: a reader in between
    (a watcher's poll, a server started on the folder) sees no index yet, not a damaged one; once no
    writer is left, a generation without CURRENT is damage again."""
    import threading

    from index.generations import IndexDamaged, IndexDir, WriteLock

    index = IndexDir(tmp_path / "index")
    (index.generations / "000001").mkdir(parents=True)
    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        with WriteLock(index.root):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert held.wait(10)
        assert index.current() is None
    finally:
        release.set()
        thread.join()
    with pytest.raises(IndexDamaged, match="CURRENT"):
        index.current()
