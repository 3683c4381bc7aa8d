"""Folder sync: changes to watched files show up in search within seconds, with the real model."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from index.builder import IndexBuilder
from index.generations import IndexDir, WriteLock
from index.watch import FolderWatcher, is_temporary
from search.engine import Engine

DEADLINE = 10.0  # the promise: a change is searchable within 10 s

ALPHA = "紫藤湖畔的量子咖啡馆每天清晨六点开门，招牌饮品是桂花拿铁。"
ALPHA_EDITED = "紫藤湖畔的量子咖啡馆改为每天上午九点开门，新推出了陈皮冷萃。"
BETA = "青石板巷里的古籍修复工坊收藏了三百多部明代刻本。"
GAMMA = "北极圈科考站的越冬队员用风力发电机给温室蔬菜补光。"


def doc_ids_for(engine: Engine, query: str) -> list[str]:
    return [r.doc_id for r in engine.search(query, k=5, mode="keyword").results]


def wait_until(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


@pytest.fixture
def setup(tmp_path: Path, engine: Engine) -> tuple[Path, Path]:
    """A watched folder with one file, and an index of it (the session's model is shared)."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "beta.txt").write_text(BETA, encoding="utf-8")
    index = tmp_path / "index"
    IndexBuilder(index, embedder=engine.embedder).index_paths([folder])
    return folder, index


def watcher_for(folder: Path, index: Path, engine: Engine, **options: float) -> FolderWatcher:
    builder = IndexBuilder(index, embedder=engine.embedder)
    return FolderWatcher([folder], builder.index_paths, index_dir=index, **({"rescan": 60.0} | options))


def test_add_edit_rename_delete_and_restart(setup: tuple[Path, Path], engine: Engine,
                                            caplog: pytest.LogCaptureFixture) -> None:
    folder, index = setup
    search = Engine.open(index)
    caplog.set_level(logging.INFO, logger="semsearch.watch")
    with watcher_for(folder, index, engine) as watcher:
        wait_until(lambda: watcher.status.outcome == "ok", "the catch-up sync at start")

        (folder / "alpha.txt").write_text(ALPHA, encoding="utf-8")
        wait_until(lambda: "alpha.txt" in doc_ids_for(search, "桂花拿铁"), "a new file is found")

        # an editor's save: write a temporary file, then rename it over the document
        (folder / "alpha.txt.tmp").write_text(ALPHA_EDITED, encoding="utf-8")
        os.replace(folder / "alpha.txt.tmp", folder / "alpha.txt")
        wait_until(lambda: "alpha.txt" in doc_ids_for(search, "陈皮冷萃"), "an edited file is found")
        assert "alpha.txt" not in doc_ids_for(search, "桂花拿铁"), "the old text is still found"

        (folder / "sub").mkdir()
        os.rename(folder / "alpha.txt", folder / "sub" / "renamed.txt")
        wait_until(lambda: doc_ids_for(search, "陈皮冷萃")[:1] == ["sub/renamed.txt"], "a renamed file")
        assert "alpha.txt" not in [d["doc_id"] for d in search.documents()["documents"]]

        (folder / "beta.txt").unlink()
        wait_until(lambda: "beta.txt" not in doc_ids_for(search, "古籍修复"), "a deleted file is gone")
    assert any("deleted beta.txt" in r.getMessage() for r in caplog.records), "the log names the change"

    # stopped: the folder changes meanwhile, and a restart catches up by content hash
    (folder / "gamma.txt").write_text(GAMMA, encoding="utf-8")
    (folder / "sub" / "renamed.txt").unlink()
    generation = IndexDir(index).current()
    time.sleep(0.5)
    assert IndexDir(index).current() == generation, "a stopped watcher still syncs"
    with watcher_for(folder, index, engine):
        wait_until(lambda: "gamma.txt" in doc_ids_for(search, "温室蔬菜"), "a file added while stopped")
        wait_until(lambda: not doc_ids_for(search, "陈皮冷萃"), "a file deleted while stopped")


def test_burst_is_one_generation_and_temp_files_are_ignored(setup: tuple[Path, Path], engine: Engine) -> None:
    folder, index = setup
    with watcher_for(folder, index, engine) as watcher:
        wait_until(lambda: watcher.status.syncs >= 1, "the catch-up sync")
        before = int(IndexDir(index).current() or 0)
        for i in range(5):  # a burst: five files within a second
            text = f"第{i}份批量写入的备忘录，主题是湿地候鸟观测。"
            (folder / f"burst{i}.txt").write_text(text, encoding="utf-8")
            time.sleep(0.1)
        wait_until(lambda: len(Engine.open(index).documents()["documents"]) == 6, "the burst is indexed")
        assert int(IndexDir(index).current() or 0) == before + 1, "a burst made more than one generation"
        wait_until(lambda: watcher.status.syncs == 2, "the burst is synced")  # published, then counted

        syncs = watcher.status.syncs
        for name in ("notes.txt~", ".notes.txt.swp", "draft.tmp", ".#notes.txt", "4913", ".hidden.txt",
                     "photo.jpg"):  # scratch files, and a file no loader reads
            (folder / name).write_text("临时文件", encoding="utf-8")
        time.sleep(2.5)  # longer than quiet + max delay
        assert watcher.status.syncs == syncs, "editor temporary files triggered a sync"


def test_missing_folder_keeps_its_documents_until_it_is_back(setup: tuple[Path, Path],
                                                             engine: Engine) -> None:
    folder, index = setup
    search = Engine.open(index)
    with watcher_for(folder, index, engine, rescan=1.0) as watcher:
        wait_until(lambda: watcher.status.outcome == "ok", "the catch-up sync")
        aside = folder.with_name("aside")
        os.rename(folder, aside)  # an unmounted share, a folder moved away
        wait_until(lambda: watcher.status.unavailable == [str(folder)], "the folder is seen as unavailable")
        time.sleep(1.5)  # a rescan or two without the folder
        assert "beta.txt" in doc_ids_for(search, "古籍修复"), "documents of a missing folder were deleted"

        (aside / "gamma.txt").write_text(GAMMA, encoding="utf-8")
        os.rename(aside, folder)  # back, with a change made while it was away
        wait_until(lambda: "gamma.txt" in doc_ids_for(search, "温室蔬菜"), "the folder is followed again")
        assert watcher.status.unavailable == []
        (folder / "beta.txt").unlink()  # and its events are watched again
        wait_until(lambda: not doc_ids_for(search, "古籍修复"), "a deletion after the folder came back")


def test_a_folder_replaced_wholesale_is_followed(setup: tuple[Path, Path], engine: Engine) -> None:
    folder, index = setup
    search = Engine.open(index)
    with watcher_for(folder, index, engine) as watcher:  # no rescan within the test: events only
        wait_until(lambda: watcher.status.outcome == "ok", "the catch-up sync")
        fresh = folder.with_name("fresh")
        fresh.mkdir()
        (fresh / "gamma.txt").write_text(GAMMA, encoding="utf-8")
        os.rename(folder, folder.with_name("old"))
        os.rename(fresh, folder)  # a deploy swaps the folder in one go
        wait_until(lambda: "gamma.txt" in doc_ids_for(search, "温室蔬菜"), "the new folder's contents")
        assert not doc_ids_for(search, "古籍修复"), "the old folder's file is still found"
        (folder / "alpha.txt").write_text(ALPHA, encoding="utf-8")  # events of the new folder are seen
        wait_until(lambda: "alpha.txt" in doc_ids_for(search, "桂花拿铁"), "a file added to the new folder")


def test_a_locked_index_is_synced_once_the_other_writer_is_done(setup: tuple[Path, Path],
                                                                engine: Engine) -> None:
    folder, index = setup
    search = Engine.open(index)
    with watcher_for(folder, index, engine, retry=0.5) as watcher:
        wait_until(lambda: watcher.status.outcome == "ok", "the catch-up sync")
        with WriteLock(index):  # another writer (an API upload, the CLI) holds the index
            (folder / "gamma.txt").write_text(GAMMA, encoding="utf-8")
            wait_until(lambda: watcher.status.outcome == "locked", "the sync found the index locked")
        wait_until(lambda: "gamma.txt" in doc_ids_for(search, "温室蔬菜"), "the retried sync")
        assert watcher.status.outcome == "ok"


def test_a_failing_sync_is_reported_and_retried_with_backoff(tmp_path: Path) -> None:
    """A fake sync (the edge case: a disk that is full for a while); the watcher must outlive it."""
    from index.builder import BuildSummary

    calls: list[float] = []

    def sync(roots: list[Path]) -> BuildSummary:
        calls.append(time.monotonic())
        if len(calls) <= 3:
            raise OSError(28, "No space left on device")
        return BuildSummary(generation="000001")

    with FolderWatcher([tmp_path], sync, retry=0.2, rescan=60) as watcher:
        wait_until(lambda: len(calls) >= 2, "a retry")
        assert watcher.status.outcome == "failed" and "No space left" in (watcher.status.error or "")
        wait_until(lambda: watcher.status.outcome == "ok", "the sync once the cause is gone")
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert gaps[1] > gaps[0] * 1.5, f"no backoff between failed syncs: {gaps}"
    assert watcher.status.outcomes == {"failed": 3, "ok": 1}


def test_temporary_names() -> None:
    for name in ("a.txt~", ".a.txt.swp", "a.swp", "x.tmp", ".#a.txt", "4913", ".git/config", "d/.cache/x.md"):
        assert is_temporary(name), name
    for name in ("a.txt", "sub/b.md", "4913.txt", "notes.jsonl"):
        assert not is_temporary(name), name


def test_an_index_inside_the_watched_folder_does_not_sync_itself(tmp_path: Path, engine: Engine) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "beta.txt").write_text(BETA, encoding="utf-8")
    index = folder / "search-index"  # not hidden: its files are seen by the watch
    with watcher_for(folder, index, engine) as watcher:
        wait_until(lambda: watcher.status.outcome == "ok", "the first sync")
        (folder / "gamma.txt").write_text(GAMMA, encoding="utf-8")
        wait_until(lambda: watcher.status.added == 1 and watcher.status.syncs >= 2, "the change is synced")
        syncs = watcher.status.syncs
        time.sleep(2.5)
        assert watcher.status.syncs == syncs, "the index's own writes triggered syncs"
    documents = Engine.open(index).documents()["documents"]
    assert sorted(d["doc_id"] for d in documents) == ["beta.txt", "gamma.txt"]


def test_watched_root_inside_a_hidden_folder_is_followed(tmp_path: Path, engine: Engine) -> None:
    folder = tmp_path / ".config" / "notes"  # only names below the root count as hidden
    folder.mkdir(parents=True)
    index = tmp_path / "index"
    with watcher_for(folder, index, engine) as watcher:
        wait_until(lambda: watcher.status.outcome == "ok", "the first sync makes the (empty) index")
        (folder / "gamma.txt").write_text(GAMMA, encoding="utf-8")
        search = Engine.open(index)
        wait_until(lambda: "gamma.txt" in doc_ids_for(search, "温室蔬菜"), "a file under a hidden parent")


def test_serve_watch_follows_the_folder_beside_api_writes(
        tmp_path: Path) -> None:
    import httpx

    from tests.api.conftest import start_server, stop_server

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "beta.txt").write_text(BETA, encoding="utf-8")
    index = tmp_path / "index"  # new: `serve --watch` builds it before serving

    def found(client: httpx.Client, query: str) -> list[str]:
        response = client.get("/search", params={"q": query, "k": 5, "mode": "keyword"})
        return [r["doc_id"] for r in response.json()["results"]]

    # (the catch-up after a restart is test_add_edit_rename_delete_and_restart's, in-process)
    server = start_server(index, tmp_path / "server.log", args=["--watch", str(folder)])
    try:
        with server.client() as client:
            wait_until(lambda: (client.get("/health").json()["sync"] or {}).get("outcome") == "ok",
                       "the first sync is reported by /health")
            sync = client.get("/health").json()["sync"]
            assert sync["folders"] == [str(folder.resolve())] and sync["last_sync"]
            assert "beta.txt" in found(client, "古籍修复")

            # a folder change and an API write at the same time: both take the write lock in turn
            (folder / "alpha.txt").write_text(ALPHA, encoding="utf-8")
            job = client.post("/documents?wait=60", json={"documents": [
                {"doc_id": "api-note", "title": "笔记", "text": GAMMA}]}).json()
            assert job["state"] == "done", job
            wait_until(lambda: "alpha.txt" in found(client, "桂花拿铁"), "a file added under serve --watch")
            assert "api-note" in found(client, "温室蔬菜"), "a sync dropped an API document"
            metrics = client.get("/metrics").text
            assert "semsearch_folder_sync_age_seconds" in metrics
    finally:
        stop_server(server)
    assert "added alpha.txt" in server.log.read_text(), "the log does not say what changed"


def test_watch_command_follows_a_folder_until_interrupted(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    missing = subprocess.run([sys.executable, "-m", "api.cli", "watch", str(tmp_path / "nope"), "--index",
                              str(tmp_path / "index")], cwd=root, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "beta.txt").write_text(BETA, encoding="utf-8")
    index = tmp_path / "index"
    log = (tmp_path / "watch.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "api.cli", "watch", str(folder), "--index", str(index)],
                               cwd=root, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: IndexDir(index).current() is not None, "the first sync builds the index", 180)
        search = Engine.open(index)
        (folder / "alpha.txt").write_text(ALPHA, encoding="utf-8")
        wait_until(lambda: "alpha.txt" in doc_ids_for(search, "桂花拿铁"), "a file added under `watch`")
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        log.close()
    output = (tmp_path / "watch.log").read_text()
    assert "added alpha.txt" in output and "stopped watching" in output and "Traceback" not in output, output


def test_an_edited_semsearchignore_is_synced(setup: tuple[Path, Path], engine: Engine) -> None:
    folder, index = setup
    search = Engine.open(index)
    with watcher_for(folder, index, engine) as watcher:
        wait_until(lambda: watcher.status.outcome == "ok", "the catch-up sync at start")
        (folder / ".semsearchignore").write_text("beta.txt\n", encoding="utf-8")
        wait_until(lambda: not search.documents()["documents"], "the file it names leaves the index")
        (folder / ".semsearchignore").unlink()
        wait_until(lambda: doc_ids_for(search, "古籍修复") == ["beta.txt"], "it is back once the line goes")
