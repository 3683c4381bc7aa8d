"""Nothing already indexed is lost: SIGKILL at random moments, a full disk, a read-only folder."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.builder import IndexBuilder
from index.generations import IndexDir, IndexWriteError
from search.engine import Engine

KILLS = 20
TOPICS = "创新产业集群科技中心区域协同发展高质量数据算力长三角成渝超算园区企业人才政策规划"


def write_batch(corpus: Path, batch: int, docs: int = 12) -> None:
    rng = random.Random(batch)
    with (corpus / f"batch{batch:02d}.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(docs):
            body = "".join(rng.choice(TOPICS) for _ in range(90))
            text = f"第{batch}批第{i}篇：{body}。"
            fh.write(json.dumps({"doc_id": f"b{batch}-{i}", "title": f"批{batch}", "text": text}) + "\n")


def assert_consistent(index: Path) -> tuple[str, set[str]]:
    """The published generation is whole: every store holds the same passages, and search answers."""
    engine = Engine.open(index)
    snap = engine.snapshot()
    passages = snap.passages.count_passages()
    assert len(snap.vectors) == passages, "vector store and passage store disagree"
    if snap.keywords is not None:
        assert len(snap.keywords) == passages, "keyword store and passage store disagree"
    assert snap.manifest.passages == passages
    results = engine.search("成都超算中心", k=3, mode="dense").results
    assert results and results[0].doc_id == "seed.txt"
    batches = {
        d["doc_id"].split("-")[0] for d in engine.documents(limit=10_000)["documents"] if "-" in d["doc_id"]
    }
    return snap.name, batches


def test_sigkill_at_random_moments_never_leaves_a_mix(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    (corpus / "seed.txt").write_text(
        "成都超算中心自2020年投运以来，为西部地区提供了强大的算力支撑。", encoding="utf-8"
    )
    rng = random.Random(2026)
    env = dict(os.environ, SEMSEARCH_INDEX=str(index))
    command = [sys.executable, "-m", "api.cli", "index", str(corpus), "--quiet"]
    # The first build runs as the killed ones will; its length sets when the kills land.
    started = time.monotonic()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    build_seconds = time.monotonic() - started
    generations = set()
    for kill in range(KILLS):
        write_batch(corpus, kill)
        on_disk = {f"b{b}" for b in range(kill + 1)}
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        # Anywhere from start-up to publishing, whatever the machine's speed: up to half as long again as
        # the last whole build (at most 15 s). A build that ends first is not waited for, and its length
        # is the pace of the next kills.
        try:
            proc.wait(timeout=rng.uniform(0.2, min(15.0, 1.5 * build_seconds)))
            build_seconds = time.monotonic() - started
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        name, batches = assert_consistent(index)
        generations.add(name)
        if kill % 5 == 4:
            # Let one build finish now and then, so later kills hit an index with several generations
            # (and old ones being pruned) whatever the machine's speed.
            IndexBuilder(index).index_paths([corpus])
        # A whole generation holds a prefix of the batches written so far, never part of a batch.
        assert batches <= on_disk
        assert batches == {f"b{b}" for b in range(len(batches))}
    final = IndexBuilder(index).index_paths([corpus])
    assert final.documents == 1 + KILLS * 12
    assert_consistent(index)
    leftovers = [p.name for p in IndexDir(index).generations.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == [], "a completed build removes the folders of killed ones"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs (root only): the index lives on it so the disk can really fill up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_is_a_clear_error_and_the_old_index_answers(
    small_disk: Path, seed_corpus: Path, tmp_path: Path
) -> None:
    index = small_disk / "index"
    first = IndexBuilder(index).index_paths([seed_corpus])
    filler = small_disk / "filler"
    with filler.open("wb") as fh:  # leave almost nothing free
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    big = tmp_path / "more"
    big.mkdir()
    write_batch(big, 1, docs=200)
    with pytest.raises(IndexWriteError, match="previous generation is intact") as failed:
        IndexBuilder(index).index_paths([seed_corpus, big])
    assert re.search(r"Free disk space \([\d.,]+ MB free there\)", str(failed.value)), str(failed.value)
    assert IndexDir(index).current() == first.generation
    results = Engine.open(index).search("到2025年长三角研发投入强度的目标是多少", k=3).results
    assert any("超过3%" in r.text for r in results)
    assert not any(p.name.endswith(".tmp") for p in IndexDir(index).generations.iterdir())


def test_read_only_folder_is_a_clear_error_and_still_searchable(
    small_disk: Path, seed_corpus: Path, tmp_path: Path
) -> None:
    index = small_disk / "index"
    first = IndexBuilder(index).index_paths([seed_corpus])
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "new.txt").write_text("宜宾正举全市之力超常规推进大学城、科创城双城建设。", encoding="utf-8")
    with pytest.raises(IndexWriteError, match="could not write the index.*Mount that file system writable"):
        IndexBuilder(index).index_paths([extra])
    engine = Engine.open(index)
    assert engine.info()["generation"] == first.generation
    assert engine.search("长三角研发投入", k=1).results


@pytest.mark.integration
def test_a_disk_not_mounted_keeps_its_documents(small_disk: Path, seed_corpus: Path, tmp_path: Path) -> None:
    """A folder on a disk that is then unmounted is still there, as the empty mount point on the disk
    below: `index` of it must keep its documents and say why, not delete them all as a folder emptied."""
    for f in seed_corpus.iterdir():
        (small_disk / f.name).write_bytes(f.read_bytes())
    index = tmp_path / "index"
    first = IndexBuilder(index).index_paths([small_disk])
    assert first.documents == 2
    subprocess.run(["umount", str(small_disk)], check=True)
    assert small_disk.is_dir() and not any(small_disk.iterdir())
    again = IndexBuilder(index).index_paths([small_disk])
    assert again.deleted == 0 and again.documents == 2
    assert any("another disk" in w and str(small_disk) in w for w in again.warnings), again.warnings
    assert Engine.open(index).search("长三角研发投入强度", k=1).results
    # mounted again with its files: nothing to do; emptied on its own disk: its documents go
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small_disk)], check=True)
    for f in seed_corpus.iterdir():
        (small_disk / f.name).write_bytes(f.read_bytes())
    back = IndexBuilder(index).index_paths([small_disk])
    assert back.unchanged == 2 and back.deleted == 0 and not back.warnings
    for f in small_disk.iterdir():
        f.unlink()
    assert IndexBuilder(index).index_paths([small_disk]).deleted == 2
