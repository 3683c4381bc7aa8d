"""The incremental builder and its generations, on the real model with small corpora."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from index.builder import IndexBuilder, SettingsMismatch
from index.config import IndexSettings
from index.documents import Document, LoadError
from index.generations import IndexDir, IndexLocked, WriteLock
from search.engine import Engine, ModelMismatch

PARAGRAPHS = [
    "成都超算中心自2020年投运以来，为西部地区产业发展提供了强大的算力支撑。",
    "雅安大数据产业园是成渝地区双城经济圈建设规划纲要明确合力打造的数字产业新高地。",
    "长三角国家技术创新中心日前在上海正式揭牌成立，坚持共需、共建、共享、共治理念。",
    "The Yangtze River Delta aims for research spending above 3% of GDP by 2025.",
]


def write_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(PARAGRAPHS):
        (folder / f"doc{i}.txt").write_text(f"标题{i}\n\n{text}\n", encoding="utf-8")


def test_incremental_reindex_embeds_only_what_changed(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    first = IndexBuilder(index).index_paths([corpus])
    assert first.added == 4 and first.embedded >= 4 and first.generation == "000001"

    again = IndexBuilder(index).index_paths([corpus])
    assert again.embedded == 0 and not again.changed
    assert again.generation == "000001", "an unchanged corpus publishes no new generation"
    assert "nothing re-embedded" in again.describe()

    (corpus / "doc1.txt").write_text(
        "标题1\n\n宜宾正举全市之力超常规推进大学城、科创城双城建设。\n", encoding="utf-8"
    )
    (corpus / "doc3.txt").unlink()
    changed = IndexBuilder(index).index_paths([corpus])
    assert (changed.updated, changed.deleted, changed.unchanged) == (1, 1, 2)
    assert changed.embedded == 1, "only the changed passage is embedded"
    engine = Engine.open(index)
    docs = {d["doc_id"] for d in engine.documents()["documents"]}
    assert docs == {"doc0.txt", "doc1.txt", "doc2.txt"}
    top = engine.search("宜宾大学城建设", k=1).results[0]
    assert top.doc_id == "doc1.txt" and "宜宾" in top.text
    assert all(r.doc_id != "doc3.txt" for r in engine.search("research spending 2025", k=5).results)


def test_unchanged_passages_keep_their_ids(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    IndexBuilder(index).index_paths([corpus])
    before = {r.doc_id: r.passage_id for r in Engine.open(index).search("中心", k=10).results}
    (corpus / "doc9.txt").write_text("新增文档：中国声谷正在崛起。", encoding="utf-8")
    IndexBuilder(index).index_paths([corpus])
    after = {r.doc_id: r.passage_id for r in Engine.open(index).search("中心", k=10).results}
    for doc_id, pid in before.items():
        assert after[doc_id] == pid


def test_second_writer_is_refused_with_the_pid(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    with WriteLock(index), pytest.raises(IndexLocked, match=f"locked by PID {os.getpid()}"):
        IndexBuilder(index).index_paths([corpus])


def test_another_model_is_a_clear_error(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    IndexBuilder(index).index_paths([corpus])
    other = IndexSettings()
    other.embedder.model = "some/other-model"
    with pytest.raises(SettingsMismatch, match="built with model"):
        IndexBuilder(index, other)
    with pytest.raises(ModelMismatch, match="built with model"):
        Engine.open(index, model="some/other-model")


def test_highlights_read_stored_word_bounds_and_older_indexes_still_work(tmp_path: Path) -> None:
    """Passages are stored with their word bounds, so a search highlights without segmenting them again;
    a generation written before the bounds existed still copies forward and highlights."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    IndexBuilder(index).index_paths([corpus])
    engine = Engine.open(index)
    top = engine.search("成都超算中心 算力支撑", k=1, mode="keyword").results[0]
    marked = [top.text[a:b] for a, b in top.highlights]
    assert marked == ["成都超算中心", "算力支撑"]
    assert engine.snapshot().passages.word_bounds([top.passage_id])[top.passage_id]

    # An older generation: no bounds column. The next build copies its passages without bounds.
    generation = engine.dir.path(engine.snapshot().name)
    with sqlite3.connect(generation / "passages.sqlite") as conn:
        conn.execute("ALTER TABLE passages DROP COLUMN bounds")
    # ... whose manifest had no file table or identity either (else the change reads as damage)
    manifest = json.loads((generation / "manifest.json").read_text())
    del manifest["files"], manifest["id"]
    (generation / "manifest.json").write_text(json.dumps(manifest))
    (index / "CURRENT").write_text(generation.name + "\n")
    (corpus / "doc9.txt").write_text("新增文档：中国声谷正在崛起。", encoding="utf-8")
    assert IndexBuilder(index).index_paths([corpus]).added == 1
    engine = Engine.open(index)
    passages = engine.snapshot().passages
    old = engine.search("成都超算中心 算力支撑", k=1, mode="keyword").results[0]
    assert [old.text[a:b] for a, b in old.highlights] == marked  # segmented at query time instead
    assert passages.word_bounds([old.passage_id]) == {}
    new = engine.search("中国声谷", k=1, mode="keyword").results[0]
    assert new.doc_id == "doc9.txt" and passages.word_bounds([new.passage_id])


def write_jsonl(file: Path, records: list[dict[str, str]]) -> None:
    file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def test_a_file_that_stops_loading_keeps_its_documents(tmp_path: Path) -> None:
    """A broken JSONL line or a file turned unreadable must not delete what the index holds from it; the
    good lines are still indexed, and only a file that is gone or emptied loses its documents."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    records = [{"doc_id": f"r{i}", "text": text} for i, text in enumerate(PARAGRAPHS[:3])]
    jsonl = corpus / "records.jsonl"
    write_jsonl(jsonl, records)
    IndexBuilder(index).index_paths([corpus])
    before = {d["doc_id"] for d in Engine.open(index).documents()["documents"]}
    assert before == {"doc0.txt", "doc1.txt", "doc2.txt", "doc3.txt", "r0", "r1", "r2"}

    lines = jsonl.read_text(encoding="utf-8").splitlines()
    changed = {"doc_id": "r2", "text": "宜宾正举全市之力超常规推进大学城、科创城双城建设。"}
    jsonl.write_text(f'{lines[0]}\n{{"doc_id": "r1", "text": \n{json.dumps(changed)}\n', encoding="utf-8")
    (corpus / "doc0.txt").write_bytes(b"\x00\x01binary now\x00" * 40)
    summary = IndexBuilder(index).index_paths([corpus])
    assert not summary.clean and summary.deleted == 0 and summary.kept == 2
    assert summary.updated == 1  # r2: the good lines of the broken file are read
    reasons = [s.reason for s in summary.skipped]
    assert any("line 2 of records.jsonl is not valid JSON" in r for r in reasons), reasons
    described = summary.describe()
    assert "kept the 2 document(s) the index had from them" in described
    # the broken line is named as left out of a file that was otherwise read, the binary file as skipped
    assert f"left out of {jsonl.resolve()}: line 2 of records.jsonl" in described
    assert "(its other lines were read)" in described
    assert f"skipped {(corpus / 'doc0.txt').resolve()}: " in described
    engine = Engine.open(index)
    assert {d["doc_id"] for d in engine.documents()["documents"]} == before
    assert engine.search("宜宾大学城", k=1).results[0].doc_id == "r2"
    kept = engine.document("r1")["text"]
    # its embeddings stay in the cache: the file fixed, nothing is embedded again
    write_jsonl(jsonl, [records[0], {"doc_id": "r1", "text": kept}])
    (corpus / "doc0.txt").write_text("   \n", encoding="utf-8")  # emptied on purpose: removed
    fixed = IndexBuilder(index).index_paths([corpus])
    assert fixed.clean and fixed.embedded == 0
    assert (fixed.deleted, fixed.unchanged) == (2, 5)  # doc0.txt and r2 (no longer in the file)
    skipped = {Path(s.path).name: s for s in fixed.skipped}
    assert skipped["doc0.txt"].reason == "empty" and not skipped["doc0.txt"].failed


def test_strict_changes_nothing_when_a_file_fails(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    first = IndexBuilder(index).index_paths([corpus])
    (corpus / "doc1.txt").write_bytes(b"\x00" * 100)
    (corpus / "doc2.txt").write_text("标题2\n\n新的内容。\n", encoding="utf-8")
    with pytest.raises(LoadError, match=r"1 file\(s\) could not be read, so nothing was changed.*doc1\.txt"):
        IndexBuilder(index).index_paths([corpus], strict=True)
    assert IndexDir(index).current() == first.generation


def test_same_file_name_in_two_folders_is_two_documents(tmp_path: Path) -> None:
    """`index f1` then `index f2`, both with readme.txt, used to replace the first ("1 updated"). The
    first folder keeps bare ids, a further one is prefixed with its name; a real collision is reported."""
    f1, f2, index = tmp_path / "f1", tmp_path / "f2", tmp_path / "index"
    (f2 / "sub").mkdir(parents=True)
    f1.mkdir()
    (f1 / "readme.txt").write_text(PARAGRAPHS[0], encoding="utf-8")
    (f2 / "readme.txt").write_text(PARAGRAPHS[1], encoding="utf-8")
    (f2 / "sub" / "a.txt").write_text(PARAGRAPHS[2], encoding="utf-8")
    write_jsonl(f1 / "r.jsonl", [{"doc_id": "n1", "text": PARAGRAPHS[3]}])
    builder = IndexBuilder(index)
    assert builder.index_paths([f1]).added == 2
    second = builder.index_paths([f2])
    assert (second.added, second.updated, second.deleted) == (2, 0, 0)
    engine = Engine.open(index)
    assert {d["doc_id"] for d in engine.documents()["documents"]} == {
        "readme.txt", "n1", "f2/readme.txt", "f2/sub/a.txt"
    }  # fmt: skip
    assert engine.search("雅安大数据产业园", k=1).results[0].doc_id == "f2/readme.txt"
    again = builder.index_paths([f2 / "sub"])  # a sub-folder gives the ids the folder gives
    assert (again.unchanged, again.added, again.deleted) == (1, 0, 0)

    # an explicit doc_id of another folder's file, or of a document sent through the API, is not taken
    write_jsonl(f2 / "s.jsonl", [{"doc_id": "n1", "text": "另一个文件里的同名文档。"}])
    builder.upsert([Document.from_paragraphs("note.txt", ["通过接口添加的笔记。"], title="笔记")])
    (f1 / "note.txt").write_text("同名的文件。", encoding="utf-8")
    clash = builder.index_paths([f2])
    assert not clash.clean and not clash.changed
    assert any(f"'n1' is already used by {f1.resolve() / 'r.jsonl'}" in s.reason for s in clash.skipped)
    clash = builder.index_paths([f1])
    assert any("'note.txt' is already used by a document added through the API" in s.reason
               for s in clash.skipped)  # fmt: skip
    engine = Engine.open(index)
    assert engine.document("n1")["text"] == PARAGRAPHS[3]
    assert engine.document("note.txt")["text"] == "通过接口添加的笔记。"

    # a folder moved elsewhere keeps its ids; its documents are not added a second time
    (f1 / "note.txt").unlink()
    (tmp_path / "moved").mkdir()
    f1.rename(tmp_path / "moved" / "f1")
    moved = builder.index_paths([tmp_path / "moved" / "f1"])
    assert (moved.added, moved.deleted, moved.moved, moved.unchanged) == (0, 0, 2, 2)
    path = Engine.open(index).document("readme.txt")["path"]
    assert path == str((tmp_path / "moved" / "f1" / "readme.txt").resolve())


def test_a_folder_indexed_by_another_writer_meanwhile_is_kept(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `semsearch index` runs of two new folders into one index: the second publishes while the first
    is still reading its files. The first used to commit the ids and folders it had read before: its
    readme.txt was refused as a duplicate id of the other folder's, and that folder was no longer
    recorded (indexed again, its files would have new ids)."""
    f1, f2, index = tmp_path / "f1", tmp_path / "f2", tmp_path / "index"
    for folder, text in ((f1, PARAGRAPHS[0]), (f2, PARAGRAPHS[1])):
        folder.mkdir()
        (folder / "readme.txt").write_text(text, encoding="utf-8")
    import index.builder as builder_module

    real_load, other = builder_module.load_documents, {}

    def load_while_another_writer_publishes(*args: object, **kwargs: object) -> object:
        if not other:  # the first read only: the other writer reads and publishes its folder now
            other["started"] = True
            other["summary"] = IndexBuilder(index).index_paths([f2])
        return real_load(*args, **kwargs)

    monkeypatch.setattr(builder_module, "load_documents", load_while_another_writer_publishes)
    first = IndexBuilder(index).index_paths([f1])
    assert other["summary"].added == 1
    assert (first.added, first.updated, first.deleted) == (1, 0, 0) and first.clean
    engine = Engine.open(index)
    assert engine.document("readme.txt")["text"] == PARAGRAPHS[1], "the other folder's file is not replaced"
    assert engine.document("f1/readme.txt")["text"] == PARAGRAPHS[0]
    monkeypatch.undo()
    for folder in (f1, f2):  # both folders are recorded: their ids stay
        again = IndexBuilder(index).index_paths([folder])
        assert (again.unchanged, again.added, again.deleted) == (1, 0, 0)


def test_a_build_outpaced_by_other_writers_changes_nothing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    import index.builder as builder_module

    real_load, notes = builder_module.load_documents, iter(range(100))

    def load_while_the_api_writes(*args: object, **kwargs: object) -> object:
        n = next(notes)
        IndexBuilder(index).upsert([Document.from_paragraphs(f"note{n}", [f"第{n}条笔记。"], title="笔记")])
        return real_load(*args, **kwargs)

    monkeypatch.setattr(builder_module, "load_documents", load_while_the_api_writes)
    with pytest.raises(IndexLocked, match="other writers published 3 generations while the files were read"):
        IndexBuilder(index).index_paths([corpus])
    monkeypatch.undo()
    docs = {d["doc_id"] for d in Engine.open(index).documents()["documents"]}
    assert docs == {"note0", "note1", "note2"}, "the API's writes stand, and none of the folder's files"


def test_an_index_built_before_folders_were_recorded_keeps_its_ids(tmp_path: Path) -> None:
    corpus, other, index = tmp_path / "corpus", tmp_path / "other", tmp_path / "index"
    write_corpus(corpus)
    IndexBuilder(index).index_paths([corpus])
    folder = IndexDir(index).path(IndexDir(index).current())
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.pop("roots", None)  # as an older build wrote it
    (folder / "manifest.json").write_text(json.dumps(manifest))
    other.mkdir()
    (other / "doc0.txt").write_text("宜宾正举全市之力超常规推进大学城、科创城双城建设。", encoding="utf-8")
    summary = IndexBuilder(index).index_paths([corpus, other])
    assert (summary.added, summary.updated, summary.unchanged) == (1, 0, 4)
    docs = {d["doc_id"] for d in Engine.open(index).documents()["documents"]}
    assert docs == {"doc0.txt", "doc1.txt", "doc2.txt", "doc3.txt", "other/doc0.txt"}


def test_a_file_that_fails_in_a_moved_folder_keeps_its_document(tmp_path: Path) -> None:
    """A folder moved elsewhere while one of its files turned unreadable: that file's document and its
    cached embeddings are kept (not deleted because the index recorded it at the folder's old place)."""
    corpus, index = tmp_path / "one" / "docs", tmp_path / "index"
    write_corpus(corpus)
    IndexBuilder(index).index_paths([corpus])
    moved = tmp_path / "two" / "docs"
    moved.parent.mkdir()
    corpus.rename(moved)
    (moved / "doc0.txt").write_bytes(b"\x00\x01binary now\x00" * 40)
    summary = IndexBuilder(index).index_paths([moved])
    assert (summary.deleted, summary.kept, summary.moved, summary.unchanged) == (0, 1, 4, 3)
    assert "kept the 1 document(s) the index had from them" in summary.describe()
    engine = Engine.open(index)
    assert engine.search("成都超算中心", k=1).results[0].doc_id == "doc0.txt"
    assert engine.document("doc0.txt")["path"] == str((moved / "doc0.txt").resolve())

    (moved / "doc0.txt").write_text(f"标题0\n\n{PARAGRAPHS[0]}\n", encoding="utf-8")
    fixed = IndexBuilder(index).index_paths([moved])
    assert fixed.clean and fixed.embedded == 0, "its embeddings were kept in the cache"
    assert (fixed.unchanged, fixed.deleted) == (4, 0)
    # gone from the new place: removed, as any file of a synced folder
    (moved / "doc0.txt").unlink()
    assert IndexBuilder(index).index_paths([moved]).deleted == 1


def test_another_folder_of_a_gone_folders_name_is_no_move(tmp_path: Path) -> None:
    """A share offline (`y1/share`) and another folder named `share` indexed meanwhile: that one is not
    the share moved, so the share's documents stay, and it keeps its ids when it is back."""
    main, share, other, index = tmp_path / "main", tmp_path / "y1" / "share", tmp_path / "y2" / "share", \
        tmp_path / "index"
    for folder, names in ((main, ["m"]), (share, ["s1", "s2", "s3"]), (other, ["o"])):
        folder.mkdir(parents=True)
        for i, name in enumerate(names):
            (folder / f"{name}.txt").write_text(PARAGRAPHS[i % len(PARAGRAPHS)] + name, encoding="utf-8")
    IndexBuilder(index).index_paths([main])
    IndexBuilder(index).index_paths([share])
    ids = {d["doc_id"] for d in Engine.open(index).documents()["documents"]}
    assert {"share/s1.txt", "share/s2.txt", "share/s3.txt"} <= ids
    (tmp_path / "y1").rename(tmp_path / "y1_off")
    meanwhile = IndexBuilder(index).index_paths([other])
    assert meanwhile.added == 1 and meanwhile.deleted == 0
    (tmp_path / "y1_off").rename(tmp_path / "y1")
    back = IndexBuilder(index).index_paths([share])
    assert back.unchanged == 3 and back.added == 0 and back.deleted == 0
    now = {d["doc_id"] for d in Engine.open(index).documents()["documents"]}
    assert ids <= now and len(now) == len(ids) + 1 and "share-2/o.txt" in now


def test_a_recorded_folder_that_is_gone_is_named_and_its_documents_kept(tmp_path: Path) -> None:
    """`index a b`, then b removed and `index a`: b's documents stay (an unmounted disk must not empty the
    index), and the summary says so and how to remove them; doing that removes them."""
    first, second, index = tmp_path / "a", tmp_path / "b", tmp_path / "index"
    write_corpus(first)
    second.mkdir()
    (second / "extra.txt").write_text(PARAGRAPHS[1], encoding="utf-8")
    IndexBuilder(index).index_paths([first, second])
    second.joinpath("extra.txt").unlink()
    second.rmdir()
    summary = IndexBuilder(index).index_paths([first])
    assert summary.deleted == 0 and summary.clean
    gone = [w for w in summary.warnings if str(second.resolve()) in w]
    assert gone and "its 1 document(s) are kept" in gone[0] and "mkdir -p" in gone[0], summary.warnings
    assert f"warning: {gone[0]}" in summary.describe()
    assert "b/extra.txt" in {d["doc_id"] for d in Engine.open(index).documents()["documents"]}

    second.mkdir()
    emptied = IndexBuilder(index).index_paths([second])
    assert emptied.deleted == 1 and not emptied.warnings
    assert not IndexBuilder(index).index_paths([first]).warnings


def test_chunk_settings_of_the_environment_apply_on_rebuild_and_are_named_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index keeps the chunking it was built with, and says so when the environment asks for other;
    `--rebuild` builds it afresh with what the environment sets (it was silently ignored there too)."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    IndexBuilder(index).index_paths([corpus])
    monkeypatch.setenv("SEMSEARCH_MAX_TOKENS", "64")
    monkeypatch.setenv("SEMSEARCH_TARGET_TOKENS", "32")
    kept = IndexBuilder(index).index_paths([corpus])
    assert kept.updated == 0
    assert any("SEMSEARCH_MAX_TOKENS=64" in w and "--rebuild" in w for w in kept.warnings), kept.warnings
    manifest = IndexDir(index).readable_manifest()
    assert manifest is not None and manifest.settings["chunks"]["max_tokens"] != 64
    IndexBuilder(index, rebuild=True).index_paths([corpus])
    rebuilt = IndexDir(index).readable_manifest()
    assert rebuilt is not None and rebuilt.settings["chunks"]["max_tokens"] == 64
    assert rebuilt.settings["chunks"]["target_tokens"] == 32
    assert not IndexBuilder(index).index_paths([corpus]).warnings


def test_a_file_left_out_by_semsearchignore_stops_failing_runs_and_leaves_the_index(tmp_path: Path) -> None:
    """A file that cannot be fixed fails every run (exit 3) until the folder's `.semsearchignore` names
    it: then the run is clean, and what the index had from files it leaves out goes, as if they were
    deleted; taken out of the patterns, they come back."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    (corpus / "vendor.pdf").write_bytes(b"%PDF-1.7 truncated by the vendor")
    first = IndexBuilder(index).index_paths([corpus])
    assert not first.clean and first.added == 4
    (corpus / ".semsearchignore").write_text("vendor.pdf\ndoc3.txt\n", encoding="utf-8")
    summary = IndexBuilder(index).index_paths([corpus])
    assert summary.clean and summary.deleted == 1 and summary.embedded == 0
    assert "left out 2 file(s) and folder(s) matching its patterns" in summary.describe()
    engine = Engine.open(index)
    listed = sorted(d["doc_id"] for d in engine.documents()["documents"])
    assert listed == ["doc0.txt", "doc1.txt", "doc2.txt"]
    (corpus / ".semsearchignore").write_text("vendor.pdf\n", encoding="utf-8")
    back = IndexBuilder(index).index_paths([corpus])
    assert back.clean and back.added == 1
    assert Engine.open(index).search("research spending", k=1).results[0].doc_id == "doc3.txt"


def test_one_progress_bar_counts_passages_and_their_sentences_from_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sentences are embedded after their passages, about as many characters again: the bar an operator
    reads for the ETA counts both from its first line, not the passages alone."""
    import re

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(12):
        sentences = "。".join(f"第{i}篇第{j}句讲区域创新中心建设" for j in range(10))
        (corpus / f"d{i}.txt").write_text(f"标题{i}\n\n{sentences}。\n", encoding="utf-8")
    summary = IndexBuilder(tmp_path / "index", progress=True).index_paths([corpus])
    assert summary.sentences_embedded > 100
    lines = [line for line in re.split(r"[\r\n]+", capsys.readouterr().err) if line.startswith("embedding")]
    assert lines and all(line.startswith("embedding:") for line in lines), lines  # one bar, not two

    def total(line: str) -> float:
        amount = re.search(r"\| *[\d.]+k?/([\d.]+)(k?) ", line)
        assert amount is not None, line
        return float(amount.group(1)) * (1000 if amount.group(2) else 1)

    first, last = total(lines[0]), total(lines[-1])
    assert "100%" in lines[-1] and "sentences" in lines[-1]
    assert abs(first - last) <= 0.1 * last, (lines[0], lines[-1])
